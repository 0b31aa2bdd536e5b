"""`tgpersist queue stats|dead|requeue|purge` on the scripted queue of tests/cli/accounts.py, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

import tgpersist
from tests.cli.accounts import populate
from tests.cli.run import cli


async def counts(url: str) -> tgpersist.QueueCounts:
    async with await tgpersist.open_store(url) as store:
        return await store.account("alice").updates.counts()


async def test_stats_as_lines_and_json(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    await populate(db_url)
    status, out, err = await cli(capsys, "queue", "stats", "--url", db_url)
    assert (status, err) == (0, "")
    alice, bob = (line.split("\t") for line in out.splitlines())
    assert alice[:5] == ["alice", "2", "1", "1", "1"] and alice[5].endswith("s")
    assert bob == ["bob", "0", "0", "0", "0", "-"]

    status, out, _ = await cli(capsys, "queue", "stats", "alice", "--json", "--url", db_url)
    [queue] = json.loads(out)["queues"]
    assert status == 0
    age = queue.pop("oldest_age")
    assert queue == {
        "session": "alice",
        "pending": 4,
        "available": 2,
        "in_flight": 1,
        "retry_wait": 1,
        "dead": 1,
    }
    assert isinstance(age, float) and age >= 0

    status, _, err = await cli(capsys, "queue", "stats", "nobody", "--url", db_url)
    assert (status, err) == (1, "tgpersist: error: no session named 'nobody'\n")


async def test_dead_letters_listed_then_requeued(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    await populate(db_url)
    status, out, _ = await cli(capsys, "queue", "dead", "alice", "--json", "--url", db_url)
    [letter] = json.loads(out)["dead_letters"]
    assert status == 0
    assert (letter["id"], letter["attempts"], letter["last_error"], letter["size"]) == (
        "d",
        2,
        "ValueError: bad payload",
        4,
    )
    assert letter["died_at"] >= letter["created_at"]
    status, out, _ = await cli(capsys, "queue", "dead", "alice", "--url", db_url)
    [row] = [line.split("\t") for line in out.splitlines()]
    assert (row[0], row[1], row[3]) == ("d", "2", "ValueError: bad payload")

    # u2 is in flight under w2's live lease: never handed back; an unknown id is reported.
    status, out, err = await cli(capsys, "queue", "requeue", "alice", "d", "u2", "nope", "--url", db_url)
    assert (status, out) == (1, "requeued 1 of 3 updates of alice\n")
    assert err == "tgpersist: error: not requeued (not queued, or held by a worker now): nope, u2\n"
    after = await counts(db_url)
    assert (after.available, after.in_flight, after.dead) == (3, 1, 0)

    async with await tgpersist.open_store(db_url) as store:
        updates = store.account("alice").updates
        [again] = await updates.claim(1, owner="w9")
        await updates.fail(again.id, "boom", owner="w9", retry_in=0)
        assert await updates.requeue_dead() == 0  # not dead: one failure is below max_attempts
    status, out, _ = await cli(capsys, "queue", "requeue", "alice", "--all", "--url", db_url)
    assert (status, out) == (0, "requeued 0 dead letters of alice\n")
    status, _, err = await cli(capsys, "queue", "requeue", "alice", "--url", db_url)
    assert status == 2 and "one of the arguments ID --all is required" in err


async def test_purge_dead_then_all(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    await populate(db_url)
    status, out, err = await cli(capsys, "queue", "purge", "alice", "--dead", "--yes", "--url", db_url)
    assert (status, out, err) == (
        0,
        "deleted 1 updates of alice\n",
        "will delete the 1 dead letters of alice\n",
    )
    assert (await counts(db_url)).as_dict() | {"oldest_age": 0} == {
        "pending": 4, "available": 2, "in_flight": 1, "retry_wait": 1, "dead": 0, "oldest_age": 0,
    }  # fmt: skip
    status, out, err = await cli(capsys, "queue", "purge", "alice", "--all", "--yes", "--url", db_url)
    assert (status, out) == (0, "deleted 4 updates of alice\n")
    assert err == "will delete all 4 queued updates of alice: 2 available, 1 in flight, 1 waiting, 0 dead\n"
    assert (await counts(db_url)).pending == 0
    status, _, err = await cli(capsys, "queue", "purge", "alice", "--yes", "--url", db_url)
    assert status == 2 and "one of the arguments --dead --all is required" in err
    status, _, err = await cli(capsys, "queue", "purge", "nobody", "--dead", "--yes", "--url", db_url)
    assert (status, err) == (1, "tgpersist: error: no session named 'nobody'\n")
