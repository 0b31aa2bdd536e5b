"""Group commit on SQLite when the aiosqlite connection the writer holds is closed under it: the batch
runs again on a fresh connection (nothing stored twice, one True per dedup key), or its callers get
`DatabaseUnavailable` with no driver error behind it; never a raw `ValueError`. The single-statement
reader's held connection likewise."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

import tgpersist
from tgpersist import DurableUpdate
from tgpersist.errors import DatabaseUnavailable

KEYS = 16


def held_driver(store: tgpersist.Store) -> Any:
    """The aiosqlite connection the store's group-commit writer holds (None until its first batch)."""
    held = store.writer._held
    assert held is not None  # a SQLite file store holds one
    return held.driver


def stored_keys(path: Path) -> list[str]:
    """Every dedup key in the file, read by a connection of its own."""
    with sqlite3.connect(path) as conn:
        return sorted(row[0] for row in conn.execute("SELECT key FROM tgpersist_dedup_keys"))


async def warm(store: tgpersist.Store) -> Any:
    """One committed batch (the session row exists from then on); the driver it ran on."""
    assert await store.account("bot").updates.remember("warm-up") is True
    return held_driver(store)


async def test_a_held_connection_closed_between_batches_is_replaced_and_the_batch_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "closed.db"
    async with await tgpersist.open_store(f"sqlite+aiosqlite:///{path}") as store:
        old = await warm(store)
        await old.close()  # closed under the writer: its next BEGIN meets "Connection closed"
        updates = store.account("bot").updates
        keys = [f"k{i % KEYS}" for i in range(64)]
        with caplog.at_level("INFO", logger="tgpersist.database"):
            answers = await asyncio.gather(*(updates.remember(k) for k in keys))
        assert Counter(k for k, new in zip(keys, answers, strict=True) if new) == Counter(
            {f"k{i}": 1 for i in range(KEYS)}
        )
        assert held_driver(store) is not old  # the writer reconnected
        assert any("lost before COMMIT" in r.getMessage() for r in caplog.records)
    assert stored_keys(path) == sorted({*keys, "warm-up"})


async def test_a_worker_thread_stopped_before_commit_loses_nothing_and_keeps_one_true_per_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stopped.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with await tgpersist.open_store(url) as store, await tgpersist.open_store(url) as rival:
        driver = await warm(store)
        await rival.account("bot").updates.remember("rival-warm-up")
        seen: list[str] = []

        def trace(sql: str) -> None:  # on aiosqlite's worker thread, as SQLite starts each statement
            dedup_insert = sql.startswith("INSERT INTO tgpersist_dedup_keys")
            if "BEGIN IMMEDIATE" in seen and dedup_insert and "stopped" not in seen:
                seen.append("stopped")
                driver.stop()  # the sqlite3 connection closes right after this INSERT: rolled back
            seen.append(sql)

        await driver.set_trace_callback(trace)
        updates = store.account("bot").updates
        first = asyncio.ensure_future(updates.remember("lone"))
        await asyncio.sleep(0)  # the lone caller commits alone; the batch below gathers meanwhile
        keys = [f"k{i % KEYS}" for i in range(48)]
        # An enqueue first makes the batch a BEGIN ... COMMIT transaction whose last statement is the
        # dedup INSERT: the COMMIT after it is what finds the connection closed (not yet sent, so
        # not outcome_unknown: the batch runs again instead of failing).
        queued = updates.enqueue(DurableUpdate(b"payload", id="q1"))
        ours = [updates.remember(k) for k in keys]
        theirs = [rival.account("bot").updates.remember(k) for k in keys]
        enqueued, *answers = await asyncio.gather(queued, *ours, *theirs)
        assert await first is True and enqueued is True
        assert seen.count("stopped") == 1 and seen[-1] != "COMMIT"  # the fault hit, COMMIT never ran
        wins = Counter(k for k, new in zip(keys + keys, answers, strict=True) if new)
        assert wins == Counter({f"k{i}": 1 for i in range(KEYS)})
        assert held_driver(store) is not driver  # the writer reconnected
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT id FROM tgpersist_durable_updates").fetchall() == [("q1",)]
    assert stored_keys(path) == sorted({*keys, "warm-up", "rival-warm-up", "lone"})


async def test_a_connection_closed_on_every_try_is_unavailable_with_nothing_stored(tmp_path: Path) -> None:
    path = tmp_path / "unavailable.db"
    async with await tgpersist.open_store(f"sqlite+aiosqlite:///{path}") as store:
        old = await warm(store)
        await old.close()
        closed = 0

        def close_at_checkout(dbapi_conn: Any, *_: Any) -> None:
            nonlocal closed
            closed += 1
            dbapi_conn.driver_connection.stop()  # every fresh connection is closed as it is handed out

        engine = store.engine.sync_engine
        event.listen(engine, "checkout", close_at_checkout)
        updates = store.account("bot").updates
        try:
            results = await asyncio.gather(
                *(updates.remember(f"u{i}") for i in range(8)), return_exceptions=True
            )
        finally:
            event.remove(engine, "checkout", close_at_checkout)
        # The lone first caller's batch: the closed connection, then two fresh ones (RECONNECTS); the
        # gathered batch after it: three fresh ones. Nothing was re-run beyond that.
        assert closed == 5
        assert {type(r) for r in results} == {DatabaseUnavailable}
        for error in results:
            assert isinstance(error, DatabaseUnavailable)
            assert not error.outcome_unknown and error.host == str(path) and error.port is None
            assert error.__cause__ is None and error.__context__ is None
        assert stored_keys(path) == ["warm-up"]
        # The database came back: the same calls commit once, each key won by its caller.
        assert await asyncio.gather(*(updates.remember(f"u{i}") for i in range(8))) == [True] * 8
    assert stored_keys(path) == sorted({"warm-up", *(f"u{i}" for i in range(8))})


def reader_driver(store: tgpersist.Store) -> Any:
    """The aiosqlite connection the store's single-statement reader holds (None until its first read)."""
    reader = store._db._reader
    assert reader is not None  # a SQLite file store reads on a held connection
    return reader._pinned.driver


@pytest.mark.parametrize("how", ["closed", "thread stopped"])
async def test_a_reader_connection_closed_under_it_is_replaced_and_the_read_answers(
    tmp_path: Path, how: str
) -> None:
    path = tmp_path / "reader.db"
    async with await tgpersist.open_store(f"sqlite+aiosqlite:///{path}") as store:
        updates = store.account("bot").updates
        assert await updates.remember("kept") is True
        assert await updates.seen("kept") is True  # the reader's connection is open from here on
        old = reader_driver(store)
        if how == "closed":
            await old.close()
        else:
            old.stop()
            await asyncio.sleep(0.05)
        assert await updates.seen("kept") is True
        assert await updates.seen("never") is False
        assert reader_driver(store) is not old


async def test_a_reader_whose_every_connection_is_closed_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "reader-unavailable.db"
    async with await tgpersist.open_store(f"sqlite+aiosqlite:///{path}") as store:
        updates = store.account("bot").updates
        assert await updates.remember("kept") is True
        assert await updates.seen("kept") is True
        await reader_driver(store).close()

        def close_at_checkout(dbapi_conn: Any, *_: Any) -> None:
            dbapi_conn.driver_connection.stop()

        engine = store.engine.sync_engine
        event.listen(engine, "checkout", close_at_checkout)
        try:
            with pytest.raises(DatabaseUnavailable) as caught:
                await updates.seen("kept")
        finally:
            event.remove(engine, "checkout", close_at_checkout)
        error = caught.value
        assert not error.outcome_unknown and error.host == str(path)
        assert error.__cause__ is None and error.__context__ is None
        assert await updates.seen("kept") is True  # back once connections stay open
