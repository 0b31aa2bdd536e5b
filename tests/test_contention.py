"""Several OS processes (spawned), each with its own store on one database, writing at the same time.

No lock, busy, serialisation or deadlock error may reach a caller: the store waits (SQLite busy timeout)
or re-runs the whole transaction (`Database.run`). Results must still be exact: a dedup key is new for
exactly one caller, and every peer ends up as one of the values written for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import random
import sqlite3
import threading
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, update
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

import tgpersist
from tgpersist import ChannelState, Conversation, Peer, PeerType, Session, UpdateState
from tgpersist.database import Database
from tgpersist.errors import ConstraintViolation
from tgpersist.sql import errors

ACCOUNT = "bot"
SPAWN = multiprocessing.get_context("spawn")
WORKER_DEADLINE = 240.0


# -- running workers in child processes ------------------------------------------------------------------
class _CountRetries(logging.Handler):
    """Counts the transactions `Database.run` re-ran (they must stay invisible to the caller)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("retrying transaction"):
            self.count += 1


def _child(body: Callable[..., Coroutine[Any, Any, dict[str, Any]]], out: str, *args: Any) -> None:
    """Entry point of a spawned worker: run `body`, write its result (or its traceback) as JSON."""
    retries = _CountRetries()
    logger = logging.getLogger("tgpersist.database")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(retries)
    try:
        result: dict[str, Any] = asyncio.run(body(*args))
        result["retries"] = retries.count
    except BaseException:
        result = {"error": traceback.format_exc()}
    Path(out).write_text(json.dumps(result))


async def run_workers(
    tmp_path: Path, count: int, body: Callable[..., Awaitable[dict[str, Any]]], *args: Any
) -> list[dict[str, Any]]:
    """Run `body(index, barrier, *args)` in `count` spawned processes; return their results in order."""
    barrier = SPAWN.Barrier(count)
    processes: list[SpawnProcess] = []
    for index in range(count):
        out = str(tmp_path / f"worker{index}.json")
        process = SPAWN.Process(target=_child, args=(body, out, index, barrier, *args))
        process.start()
        processes.append(process)
    deadline = time.monotonic() + WORKER_DEADLINE
    for process in processes:
        await asyncio.to_thread(process.join, max(0.1, deadline - time.monotonic()))
    stuck = [p.name for p in processes if p.is_alive()]
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    assert stuck == [], f"workers still running after {WORKER_DEADLINE}s: {stuck}"
    results = [json.loads((tmp_path / f"worker{i}.json").read_text()) for i in range(count)]
    errors = [r["error"] for r in results if "error" in r]
    assert errors == [], "\n".join(errors)
    return results


async def prepare(url: str) -> None:
    """Migrate the database and create the account, as a deployment does before starting workers."""
    async with await tgpersist.open_store(url) as store:
        await store.account(ACCOUNT).session.save(Session(ACCOUNT, dc_id=2))


# -- worker bodies ----------------------------------------------------------------------------------------
KEYS = 40


async def remember_keys(index: int, barrier: Barrier, url: str) -> dict[str, Any]:
    """After the barrier, remember every race key once, in the same order as every other process."""
    results: list[tuple[str, bool]] = []
    async with await tgpersist.open_store(url) as store:
        updates = store.account(ACCOUNT).updates
        await asyncio.to_thread(barrier.wait, 60)
        for key in range(KEYS):
            results.append((f"race:{key}", await updates.remember(f"race:{key}")))
    return {"results": results}


PEER_WINDOW = 200
NAMES = 250


def peer_batch(index: int, round_: int) -> list[Peer]:
    """Process `index`'s batch for `round_`; its fields all say which write they came from.

    Even rounds: users in a window of ids that overlaps every other process's window. Odd rounds:
    channels of this process alone. Either way the usernames are ones other processes give to other
    peers, so concurrent batches race for them even when they share no peer (and no row lock).
    """
    if round_ % 2 == 0:
        kind, ids = PeerType.USER, list(range(index * 50 + 1, index * 50 + 1 + PEER_WINDOW))
    else:
        kind, ids = PeerType.CHANNEL, list(range(index * 1000 + 1, index * 1000 + 1 + PEER_WINDOW))
    random.Random(index * 1000 + round_).shuffle(ids)
    tag = index * 100 + round_
    return [
        Peer(
            peer_id,
            kind,
            access_hash=tag * 10_000 + peer_id,
            username=f"name{(peer_id * 7 + index + round_) % NAMES}",
            first_name=f"p{index}r{round_}",
        )
        for peer_id in ids
    ]


async def save_overlapping_peers(index: int, barrier: Barrier, url: str, rounds: int) -> dict[str, Any]:
    async with await tgpersist.open_store(url) as store:
        peers = store.account(ACCOUNT).peers
        batches = [peer_batch(index, round_) for round_ in range(rounds)]
        await asyncio.to_thread(barrier.wait, 60)
        for batch in batches:
            assert await peers.save_many(batch) == PEER_WINDOW
    return {}


async def mixed_writes(index: int, barrier: Barrier, url: str, seconds: float) -> dict[str, Any]:
    """Every kind of write (and some reads), chosen at random, for `seconds`; exceptions are recorded."""
    rng = random.Random(index)
    done: Counter[str] = Counter()
    errors: list[str] = []
    async with await tgpersist.open_store(url) as store:
        acct = store.account(ACCOUNT)
        owner = f"w{index}"

        async def peers() -> None:
            ids = rng.sample(range(1, 101), 20)
            await acct.peers.save_many(
                Peer(i, PeerType.USER, rng.getrandbits(62), username=f"u{rng.randrange(60)}x{i}") for i in ids
            )

        async def state() -> None:
            await acct.updates.save_state(UpdateState(pts=rng.randrange(1 << 31), date=int(time.time())))
            await acct.updates.save_channels([ChannelState(rng.randrange(1, 30), rng.randrange(1 << 31))])

        async def session() -> None:
            await acct.session.save(Session(ACCOUNT, dc_id=rng.randrange(1, 6), state=rng.randbytes(32)))

        async def remember() -> None:
            await acct.updates.remember(f"msg:{rng.randrange(300)}", ttl=rng.choice([0.01, 60.0]))

        async def conversation() -> None:
            expires = datetime.now(UTC) + timedelta(seconds=rng.choice([-1, 60]))
            await acct.conversations.save(
                Conversation(rng.randrange(20), index, step="s", expires_at=expires)
            )

        async def queue() -> None:
            await acct.updates.enqueue_many(rng.randbytes(16) for _ in range(5))
            claimed = await acct.updates.claim(5, owner=owner, lease=30)
            if claimed:
                await acct.updates.fail(claimed[0].id, "retry me", owner=owner, retry_in=0)
                await acct.updates.ack_many(u.id for u in claimed[1:])

        async def reads() -> None:
            peer_id = rng.randrange(1, 101)
            await acct.peers.get(peer_id)
            await acct.peers.get_by_username(f"u{rng.randrange(60)}x{peer_id}")
            await acct.updates.seen(f"msg:{rng.randrange(300)}")
            await acct.updates.load_state()
            await acct.conversations.load(rng.randrange(20), index)
            await acct.session.load()

        async def prune() -> None:
            await store.prune()

        operations: list[Callable[[], Awaitable[None]]] = [
            peers,
            state,
            session,
            remember,
            conversation,
            queue,
            reads,
        ]
        await asyncio.to_thread(barrier.wait, 60)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            operation = rng.choice(operations) if rng.random() > 0.01 else prune
            try:
                await operation()
                done[operation.__name__] += 1
            except Exception as error:
                errors.append(f"{operation.__name__}: {type(error).__name__}: {error}")
    return {"done": dict(done), "errors": errors}


# -- tests -------------------------------------------------------------------------------------------------
async def test_eight_processes_remembering_one_key_get_exactly_one_true(db_url: str, tmp_path: Path) -> None:
    await prepare(db_url)
    async with await tgpersist.open_store(db_url) as store:  # half the keys exist already, expired
        for key in range(0, KEYS, 2):
            assert await store.account(ACCOUNT).updates.remember(f"race:{key}", ttl=0.01) is True
    await asyncio.sleep(0.05)

    results = await run_workers(tmp_path, 8, remember_keys, db_url)

    winners = Counter(key for r in results for key, new in r["results"] if new)
    assert winners == Counter({f"race:{key}": 1 for key in range(KEYS)})
    assert all(len(r["results"]) == KEYS for r in results)


async def test_four_processes_saving_overlapping_peers_neither_deadlock_nor_mix_writes(
    db_url: str, tmp_path: Path
) -> None:
    await prepare(db_url)
    rounds = 8
    await run_workers(tmp_path, 4, save_overlapping_peers, db_url, rounds)

    written: dict[int, dict[str, Peer]] = {}
    for index in range(4):
        for round_ in range(rounds):
            for peer in peer_batch(index, round_):
                written.setdefault(peer.dialog_id, {})[peer.first_name or ""] = peer
    async with await tgpersist.open_store(db_url) as store:
        peers = store.account(ACCOUNT).peers
        stored = await peers.list()
        assert sorted(p.dialog_id for p in stored) == sorted(written)
        owners: dict[str, int] = {}
        for peer in stored:
            # Every field of a peer comes from one and the same write ...
            source = written[peer.dialog_id][peer.first_name or ""]
            assert peer.access_hash == source.access_hash
            # ... and a username it still has is the one that write gave it (others may have taken it).
            assert peer.usernames in ((), source.usernames)
            for name in peer.usernames:
                assert name.lower() not in owners, f"{name}: {owners[name.lower()]} and {peer.dialog_id}"
                owners[name.lower()] = peer.dialog_id
        assert len(owners) > NAMES // 2
        for name, dialog_id in owners.items():
            found = await peers.get_by_username(name)
            assert found is not None and found.dialog_id == dialog_id


async def test_four_processes_writing_for_ten_seconds_see_no_lock_errors(
    backend: str, db_url: str, tmp_path: Path
) -> None:
    await prepare(db_url)
    results = await run_workers(tmp_path, 4, mixed_writes, db_url, 10.0)

    assert [r["errors"] for r in results] == [[], [], [], []]
    for result in results:
        assert {"peers", "state", "session", "remember", "conversation", "queue", "reads"} <= set(
            result["done"]
        )
    if backend == "sqlite":
        database = make_url(db_url).database
        assert database is not None
        with sqlite3.connect(database) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    async with await tgpersist.open_store(db_url) as store:  # still consistent and usable
        acct = store.account(ACCOUNT)
        names = [name.lower() for peer in await acct.peers.list() for name in peer.usernames]
        assert len(names) == len(set(names))
        assert (await acct.session.load()) is not None


# -- the retry itself, provoked for real in one process -----------------------------------------------------
def _hold_sqlite_write_lock(path: str, held: threading.Event, seconds: float) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def _write_while_locked(url: str, retries: int) -> None:
    """Save a session while another connection holds SQLite's write lock for 0.3 s; no busy wait."""
    engine = tgpersist.create_engine(url)
    # Without the busy timeout, SQLite says "database is locked" at once: only Database.run can help.
    event.listen(engine.sync_engine, "connect", _no_busy_timeout)
    path = make_url(url).database
    assert path is not None
    held = threading.Event()
    holder = threading.Thread(target=_hold_sqlite_write_lock, args=(path, held, 0.3))
    try:
        async with tgpersist.Store(engine, retries=retries) as store:
            holder.start()
            assert await asyncio.to_thread(held.wait, 10)
            await store.account(ACCOUNT).session.save(Session(ACCOUNT, dc_id=4))
    finally:
        if holder.is_alive():
            await asyncio.to_thread(holder.join)
        await engine.dispose()


def _no_busy_timeout(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 0")
    cursor.close()


async def _deadlock(url: str, retries: int) -> None:
    """Two transactions update two rows in opposite orders; PostgreSQL aborts one with 40P01."""
    engine = tgpersist.create_engine(url)
    try:
        async with tgpersist.Store(engine) as store:
            sessions = store.models.table(store.models.Session)
            database = Database(engine, store.models, retries=retries)
            first_locked, second_locked = asyncio.Event(), asyncio.Event()

            def transaction(mine: str, theirs: str, locked: asyncio.Event, other: asyncio.Event) -> Any:
                async def work(conn: AsyncConnection) -> None:
                    await conn.execute(update(sessions).where(sessions.c.name == mine).values(dc_id=1))
                    locked.set()
                    await other.wait()
                    await conn.execute(update(sessions).where(sessions.c.name == theirs).values(dc_id=2))

                return work

            outcomes = await asyncio.gather(
                database.run(transaction("a", "b", first_locked, second_locked), write=True),
                database.run(transaction("b", "a", second_locked, first_locked), write=True),
                return_exceptions=True,
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
    finally:
        await engine.dispose()


async def test_transient_conflicts_are_retried_as_whole_transactions(
    backend: str, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await prepare(db_url)
    async with await tgpersist.open_store(db_url) as store:
        for name in ("a", "b"):
            await store.account(name).session.save(Session(name))
    provoke = _write_while_locked if backend == "sqlite" else _deadlock

    with pytest.raises(DBAPIError) as info:  # what a caller would see without the retry
        await provoke(db_url, 0)
    assert errors.is_retryable(info.value)
    if backend == "sqlite":
        assert isinstance(info.value, OperationalError) and "database is locked" in str(info.value)
    else:
        assert info.value.orig.sqlstate == "40P01"  # type: ignore[union-attr]

    caplog.set_level(logging.DEBUG, logger="tgpersist.database")
    await provoke(db_url, 8)
    retried = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying transaction")]
    assert retried, "the conflict was never provoked"


async def test_other_errors_are_not_retried(db_url: str) -> None:
    await prepare(db_url)
    engine = tgpersist.create_engine(db_url)
    calls = 0
    try:
        async with tgpersist.Store(engine) as store:
            sessions = store.models.table(store.models.Session)

            async def work(conn: AsyncConnection) -> None:
                nonlocal calls
                calls += 1
                await conn.execute(sessions.insert().values(name=ACCOUNT, test_mode=False))  # duplicate

            with pytest.raises(ConstraintViolation) as info:
                await Database(engine, store.models).run(work, write=True)
            assert calls == 1 and not errors.is_retryable(info.value.driver_error.value)
    finally:
        await engine.dispose()
