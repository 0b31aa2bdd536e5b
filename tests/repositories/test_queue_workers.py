"""The durable queue under many workers: separate OS processes (spawned), each with its own store.

Every worker records each claimed update as (id, owner, claimed_at, lease_expires_at, attempts) plus
its store's clock (the database's, as that store reads it) before and after the claim call, and each
ack with its result; the parent then checks
that no update was handed out twice while a lease held, none was lost and each was acked exactly
once. Workers start together behind a barrier so that they contend.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing
import os
import signal
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import pytest

import tgpersist
from tgpersist import DurableUpdate, InvalidArgument, QueuePolicy, UpdateStatus

ACCOUNT = "bot"
SPAWN = multiprocessing.get_context("spawn")
#: Upper bound on any one worker process's life; far above what the work needs.
WORKER_DEADLINE = 240.0

#: id, owner, claimed_at, lease_expires_at, attempts (from the store); requested, returned (its clock)
Claim = tuple[str, str, float, float, int, float, float]
#: Readings of one store's clock between two samples of the database's are exact (one monotonic clock
#: plus the sample); a new sample in between may move it by the samples' difference in error, a few ms.
CLOCK_SLACK = 0.02


# -- running workers in child processes ------------------------------------------------------------------
def _child(body: Callable[..., Coroutine[Any, Any, dict[str, Any]]], out: str, *args: Any) -> None:
    """Entry point of a spawned worker: run `body`, write its result (or its traceback) as JSON."""
    try:
        result: dict[str, Any] = asyncio.run(body(*args))
    except BaseException:
        result = {"error": traceback.format_exc()}
    Path(out).write_text(json.dumps(result))


def start(
    tmp_path: Path, name: str, body: Callable[..., Awaitable[dict[str, Any]]], *args: Any
) -> SpawnProcess:
    process = SPAWN.Process(target=_child, args=(body, str(tmp_path / f"{name}.json"), *args), name=name)
    process.start()
    return process


async def finish(tmp_path: Path, processes: list[SpawnProcess]) -> dict[str, dict[str, Any]]:
    """Wait for every worker (bounded), then return each one's result; fail on any worker error."""
    deadline = time.monotonic() + WORKER_DEADLINE
    for process in processes:
        await asyncio.to_thread(process.join, max(0.1, deadline - time.monotonic()))
    stuck = [p.name for p in processes if p.is_alive()]
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    assert stuck == [], f"workers still running after {WORKER_DEADLINE}s: {stuck}"
    results = {p.name: json.loads((tmp_path / f"{p.name}.json").read_text()) for p in processes}
    errors = {name: r["error"] for name, r in results.items() if "error" in r}
    assert errors == {}, "\n".join(errors.values())
    return results


def _epoch(value: datetime | None) -> float:
    assert value is not None
    return value.timestamp()


async def claim_recorded(
    queue: Any, claims: list[Claim], limit: int, owner: str, lease: float
) -> list[DurableUpdate]:
    """Claim, noting each update claimed; its `updated_at` is the claim's own clock reading."""
    requested = queue._scope.now().timestamp()
    claimed: list[DurableUpdate] = await queue.claim(limit, owner=owner, lease=lease)
    returned = queue._scope.now().timestamp()
    for update in claimed:
        assert update.lease_owner is not None
        claims.append(
            (
                update.id,
                update.lease_owner,
                _epoch(update.updated_at),
                _epoch(update.lease_expires_at),
                update.attempts,
                requested,
                returned,
            )
        )
    return claimed


def claims_by_id(results: dict[str, dict[str, Any]]) -> dict[str, list[Claim]]:
    found: dict[str, list[Claim]] = defaultdict(list)
    for result in results.values():
        for claim in result["claims"]:
            found[claim[0]].append(tuple(claim))
    for claims in found.values():
        claims.sort(key=lambda c: c[2])
    return found


def assert_leases_never_overlap(claims: dict[str, list[Claim]]) -> None:
    """Each claim of an update came after the previous claim's lease had run out: by the clock readings
    stored (the later claim's start is not before the earlier lease's end) and by the later worker's
    own store's clock (its claim returned after that end)."""
    for history in claims.values():
        for _, _, claimed_at, _, _, requested, returned in history:
            assert requested - CLOCK_SLACK <= claimed_at <= returned + CLOCK_SLACK
        assert [c[4] for c in history] == list(range(1, len(history) + 1))
    overlaps = [
        (update_id, earlier, later)
        for update_id, history in claims.items()
        for earlier, later in itertools.pairwise(history)
        if later[2] < earlier[3] or later[6] + CLOCK_SLACK < earlier[3]
    ]
    assert overlaps == []


def acked_true(results: dict[str, dict[str, Any]]) -> Counter[str]:
    return Counter(update_id for r in results.values() for update_id, ok in r["acks"] if ok)


async def enqueue(url: str, count: int) -> list[str]:
    ids = [f"u{i:06}" for i in range(count)]
    async with await tgpersist.open_store(url) as store:
        assert (
            await store.account(ACCOUNT).updates.enqueue_many(DurableUpdate(b"p" * 64, id=i) for i in ids)
            == count
        )
    return ids


async def counts(url: str) -> dict[str, int]:
    async with await tgpersist.open_store(url) as store:
        found = await store.account(ACCOUNT).updates.counts()
        return {"pending": found.pending, "dead": found.dead}


# -- worker bodies (module level, so that spawned children can import them) ------------------------------
async def drain(url: str, owner: str, batch: int, lease: float, barrier: Barrier) -> dict[str, Any]:
    """Claim in batches, ack each batch in one transaction, until a claim comes back empty."""
    claims: list[Claim] = []
    acks: list[tuple[str, bool]] = []
    async with await tgpersist.open_store(url) as store:
        queue = store.account(ACCOUNT).updates
        await asyncio.to_thread(barrier.wait, 60)
        while claimed := await claim_recorded(queue, claims, batch, owner, lease):
            acked = set(await queue.ack_many(update.id for update in claimed))
            acks += [(update.id, update.id in acked) for update in claimed]
    return {"claims": claims, "acks": acks}


async def drain_with_slow_worker(
    url: str, owner: str, lease: float, slow: bool, barrier: Barrier
) -> dict[str, Any]:
    """Drain until nothing is pending. The slow worker sits on every 20th update until another worker
    has taken it over after its lease ran out, then tries to fail, extend and ack it (stale owner)."""
    claims: list[Claim] = []
    acks: list[tuple[str, bool]] = []
    stale: list[tuple[str, bool, bool]] = []  # id, fail() result, extend_lease() result
    deadline = time.monotonic() + WORKER_DEADLINE - 30
    async with await tgpersist.open_store(url) as store:
        queue = store.account(ACCOUNT).updates
        # The slow worker takes the oldest batch (holding u000000) before the others start.
        claimed = await claim_recorded(queue, claims, 10, owner, lease) if slow else []
        await asyncio.to_thread(barrier.wait, 60)
        while time.monotonic() < deadline:
            claimed = claimed or await claim_recorded(queue, claims, 10, owner, lease)
            if not claimed:
                if (await queue.counts())["pending"] == 0:
                    break
                await asyncio.sleep(0.02)
                continue
            for update in claimed:
                if slow and update.attempts == 1 and int(update.id[1:]) % 20 == 0:
                    while time.monotonic() < deadline:
                        now = await queue.get(update.id)
                        if now is None or now.lease_owner != owner:
                            break
                        await asyncio.sleep(0.02)
                    failed = await queue.fail(update.id, "too late", owner=owner)
                    extended = await queue.extend_lease(update.id, owner=owner)
                    stale.append((update.id, failed, extended))
                acks.append((update.id, await queue.ack(update.id)))
            claimed = []
    return {"claims": claims, "acks": acks, "stale": stale}


async def claim_then_hang(url: str, owner: str, lease: float, ready: Event, out: str) -> dict[str, Any]:
    """Claim a batch of 100, ack the first 10, write down what it holds, then hang until killed."""
    async with await tgpersist.open_store(url) as store:
        queue = store.account(ACCOUNT).updates
        claims: list[Claim] = []
        claimed = await claim_recorded(queue, claims, 100, owner, lease)
        for update in claimed[:10]:
            assert await queue.ack(update.id)
        result = {"claims": claims, "acks": [(u.id, True) for u in claimed[:10]]}
        await asyncio.to_thread(Path(out).write_text, json.dumps(result))
        ready.set()
        await asyncio.sleep(WORKER_DEADLINE)
    return result


async def drain_until_empty(url: str, owner: str, lease: float) -> dict[str, Any]:
    """Drain until nothing is pending at all, waiting for leased updates to come back."""
    claims: list[Claim] = []
    acks: list[tuple[str, bool]] = []
    deadline = time.monotonic() + WORKER_DEADLINE - 30
    async with await tgpersist.open_store(url) as store:
        queue = store.account(ACCOUNT).updates
        while time.monotonic() < deadline:
            claimed = await claim_recorded(queue, claims, 25, owner, lease)
            if not claimed:
                if (await queue.counts())["pending"] == 0:
                    break
                await asyncio.sleep(0.05)
            for update in claimed:
                acks.append((update.id, await queue.ack(update.id)))
    return {"claims": claims, "acks": acks}


# -- tests -------------------------------------------------------------------------------------------------
async def test_four_processes_drain_20000_updates_each_acked_exactly_once(
    db_url: str, tmp_path: Path
) -> None:
    ids = await enqueue(db_url, 20_000)
    barrier = SPAWN.Barrier(4)
    workers = [start(tmp_path, f"w{i}", drain, db_url, f"w{i}", 100, 600.0, barrier) for i in range(4)]
    results = await finish(tmp_path, workers)

    claims = claims_by_id(results)
    assert sorted(claims) == ids  # none lost
    assert all(len(history) == 1 for history in claims.values())  # none handed out twice
    assert_leases_never_overlap(claims)
    assert all(owner == f"w{i}" for i, r in enumerate(results.values()) for _, owner, *_ in r["claims"])
    assert acked_true(results) == Counter(ids)
    assert [a for r in results.values() for a in r["acks"] if not a[1]] == []
    assert await counts(db_url) == {"pending": 0, "dead": 0}


async def test_expired_leases_are_taken_over_and_stale_owners_are_fenced_off(
    db_url: str, tmp_path: Path
) -> None:
    ids = await enqueue(db_url, 600)
    barrier = SPAWN.Barrier(4)
    workers = [
        start(tmp_path, f"w{i}", drain_with_slow_worker, db_url, f"w{i}", 0.5, i == 0, barrier)
        for i in range(4)
    ]
    results = await finish(tmp_path, workers)

    claims = claims_by_id(results)
    assert sorted(claims) == ids
    assert_leases_never_overlap(claims)
    assert acked_true(results) == Counter(ids)  # at least once handled, exactly once removed
    stale = results["w0"]["stale"]
    assert stale, "the slow worker held no update long enough"
    for update_id, failed, extended in stale:
        assert (failed, extended) == (False, False)
        assert len(claims[update_id]) >= 2 and claims[update_id][1][1] != "w0"
    assert await counts(db_url) == {"pending": 0, "dead": 0}


async def test_sigkilled_worker_updates_come_back_after_its_lease(db_url: str, tmp_path: Path) -> None:
    ids = await enqueue(db_url, 300)
    ready = SPAWN.Event()
    victim_out = tmp_path / "victim-claims.json"
    victim = start(tmp_path, "victim", claim_then_hang, db_url, "victim", 3.0, ready, str(victim_out))
    try:
        assert await asyncio.to_thread(ready.wait, 120), "the victim never claimed"
        os.kill(victim.pid, signal.SIGKILL)  # type: ignore[arg-type]
    finally:
        victim.kill()  # already dead unless the test failed before the kill
        await asyncio.to_thread(victim.join, 30)
    assert victim.exitcode == -signal.SIGKILL
    killed = json.loads(victim_out.read_text())
    held = {c[0]: c for c in killed["claims"][10:]}
    assert len(killed["claims"]) == 100 and len(held) == 90

    survivors = [start(tmp_path, f"s{i}", drain_until_empty, db_url, f"s{i}", 60.0) for i in range(2)]
    results = await finish(tmp_path, survivors)
    results["victim"] = killed

    claims = claims_by_id(results)
    assert sorted(claims) == ids
    assert_leases_never_overlap(claims)
    assert acked_true(results) == Counter(ids)
    for update_id, (_, _, _, victim_expiry, *_) in held.items():
        again = claims[update_id][1]
        assert again[1] in {"s0", "s1"} and again[4] == 2 and again[2] >= victim_expiry
    assert await counts(db_url) == {"pending": 0, "dead": 0}


# -- single-process semantics of the lease story ----------------------------------------------------------
async def test_a_lease_that_keeps_expiring_ends_in_the_dead_letters(db_url: str) -> None:
    policy = QueuePolicy(max_attempts=3)
    async with await tgpersist.open_store(db_url, queue_policy=policy) as store:
        queue = store.account(ACCOUNT).updates
        await queue.enqueue(DurableUpdate(b"poison", id="poison"))
        for attempt in (1, 2, 3):
            claimed = await queue.claim(1, owner=f"crash{attempt}", lease=0.05)
            assert [(u.id, u.attempts) for u in claimed] == [("poison", attempt)]
            await asyncio.sleep(0.1)
        await queue.enqueue(DurableUpdate(b"ok", id="ok"))
        # The fourth claim finds "poison" exhausted: dead-lettered, and "ok" is handed out instead.
        assert [(u.id, u.attempts) for u in await queue.claim(1, owner="w")] == [("ok", 1)]
        dead = await queue.dead_letters()
        assert [(u.id, u.status, u.attempts, u.last_error, u.lease_owner) for u in dead] == [
            ("poison", UpdateStatus.DEAD, 3, "lease of crash3 expired unsettled", None)
        ]
        found = await queue.counts()
        assert (found.pending, found.dead) == (1, 1)
        assert await queue.requeue("poison") is True
        assert [(u.id, u.attempts) for u in await queue.claim(5, owner="w")] == [("poison", 1)]


async def test_fail_and_extend_act_only_for_the_live_owner(db_url: str) -> None:
    async with await tgpersist.open_store(db_url) as store:
        queue = store.account(ACCOUNT).updates
        await queue.enqueue(DurableUpdate(b"x", id="u"))
        [claimed] = await queue.claim(1, owner="w1", lease=30)
        assert await queue.fail("u", "not mine", owner="w2") is False
        assert await queue.extend_lease("u", owner="w2") is False
        assert await queue.requeue("u") is False  # leased: never handed to a second worker
        assert await queue.extend_lease("u", owner="w1", lease=120) is True
        extended = await queue.get("u")
        assert extended is not None and extended.lease_owner == "w1"
        assert claimed.lease_expires_at is not None and extended.lease_expires_at is not None
        assert extended.lease_expires_at - claimed.lease_expires_at > timedelta(seconds=80)
        assert await queue.fail("u", "mine", owner="w1", retry_in=0) is True
        assert await queue.fail("u", "again", owner="w1") is False  # no longer leased to w1
        failed = await queue.get("u")
        assert failed is not None and (failed.last_error, failed.lease_owner) == ("mine", None)
        [again] = await queue.claim(1, owner="w2", lease=0.05)
        assert (again.attempts, again.lease_owner) == (2, "w2")
        await asyncio.sleep(0.1)
        assert await queue.extend_lease("u", owner="w2") is False  # expired: too late to extend
        assert await queue.fail("u", "late", owner="w2") is False
        assert await queue.requeue("u") is True


async def test_ack_many_and_lease_arguments(db_url: str) -> None:
    async with await tgpersist.open_store(db_url) as store:
        queue = store.account(ACCOUNT).updates
        await queue.enqueue_many(DurableUpdate(b"x", id=f"u{i}") for i in range(2500))
        claimed = await queue.claim(2500, owner="w", lease=timedelta(minutes=5))
        assert len(claimed) == 2500
        assert [u.id for u in claimed[:3]] == ["u0", "u1", "u2"]  # enqueue order
        assert all(
            u.lease_expires_at is not None and u.lease_expires_at > datetime.now(UTC) + timedelta(minutes=4)
            for u in claimed
        )
        acked = await queue.ack_many([u.id for u in claimed] + ["missing", "u0"])
        assert acked == sorted(u.id for u in claimed)
        assert await queue.ack_many(["u0", "u1"]) == []
        assert await queue.ack_many([]) == []
        found = await queue.counts()
        assert (found.pending, found.dead) == (0, 0)
        bad_calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("lease", lambda: queue.claim(1, lease=0)),
            ("lease", lambda: queue.claim(1, lease=-1)),
            ("owner", lambda: queue.claim(1, owner="")),
            ("owner", lambda: queue.extend_lease("u", owner="")),
            ("lease", lambda: queue.extend_lease("u", owner="w", lease=0)),
            ("owner", lambda: queue.fail("u", "e", owner="")),
            ("update_id", lambda: queue.ack_many(["ok", ""])),
        ]
        for field, call in bad_calls:
            with pytest.raises(InvalidArgument) as info:
                await call()
            assert info.value.field == field
