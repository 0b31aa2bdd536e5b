"""The holder's own deadline, on both backends: `lost` by the clock while the database says nothing,
right after a SIGSTOP/SIGCONT of a real holder process, and while a renewal waits on a locked SQLite."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.pool import StaticPool

import tgpersist
from tgpersist import DatabaseUnavailable, LeaseLost, SessionBusy, SessionLease, UpdateState
from tgpersist.repositories.lease_deadline import MARGIN_SHARE

NAME = "bot"
ROOT = Path(__file__).resolve().parents[2]


async def test_an_unrenewed_lease_is_lost_by_the_clock_before_the_database_frees_it(
    backend: str, db_url: str, store: tgpersist.Store
) -> None:
    told: list[SessionLease] = []
    ttl = 3.0
    lease = await store.account(NAME).session.acquire(owner="a", ttl=ttl, heartbeat=0, on_lost=told.append)
    assert lease.margin == pytest.approx(ttl * MARGIN_SHARE) and lease.margin < ttl / 2
    assert not lease.lost
    async with await tgpersist.open_store(db_url) as other:
        rival = other.account(NAME).session
        lost = asyncio.Event()
        lease._on_lost = lambda held: (told.append(held), lost.set())
        await asyncio.wait_for(lost.wait(), ttl * 3)
        assert told == [lease] and lease.lost
        # The database still has it for the margin: nobody else could take it yet.
        with pytest.raises(SessionBusy):
            await rival.acquire(owner="b", ttl=ttl)
        taken = await rival.acquire(owner="b", ttl=ttl, wait=True, timeout=ttl * 3)
        with pytest.raises(LeaseLost):  # a lost lease stays lost: no renewal brings it back
            await lease.renew()
        assert told == [lease]
        await taken.release()


async def test_after_sigcont_a_frozen_holder_process_reads_lost_before_anything_else_runs(
    db_url: str, store: tgpersist.Store
) -> None:
    ttl = 2.0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.faults.holder", db_url, str(ttl),
        stdout=asyncio.subprocess.PIPE, env=env, cwd=ROOT,
    )  # fmt: skip
    assert process.stdout is not None

    async def event() -> dict[str, Any]:
        line = await asyncio.wait_for(process.stdout.readline(), 30)  # type: ignore[union-attr]
        assert line, "the holder process ended early"
        return dict(json.loads(line))

    try:
        assert (await event())["event"] == "acquired"
        process.send_signal(signal.SIGSTOP)
        taken = await store.account(NAME).session.acquire(owner="b", ttl=30, wait=True, timeout=ttl * 4)
        await store.account(NAME).updates.save_state(UpdateState(pts=1, qts=1, date=1, seq=1))
        process.send_signal(signal.SIGCONT)
        events = [await event() for _ in range(3)]
        # The SIGCONT handler's read of `lost` is what decides (and calls on_lost, at once, once).
        assert events == [
            {"event": "lost", "lost": True},
            {"event": "woke", "lost": True},
            {"event": "write", "outcome": "LeaseLost"},
        ]
        assert await asyncio.wait_for(process.wait(), 30) == 0
        assert await store.account(NAME).updates.load_state() == UpdateState(pts=1, qts=1, date=1, seq=1)
        await taken.release()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_renewal_stuck_behind_another_sqlite_writer_ends_at_the_deadline(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    async with await tgpersist.open_store(f"sqlite+aiosqlite:///{path}") as store:
        told: list[SessionLease] = []
        lease = await store.account(NAME).session.acquire(
            owner="a", ttl=1.5, heartbeat=0, on_lost=told.append
        )
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another process's write transaction, held
            with pytest.raises(DatabaseUnavailable) as caught:
                await asyncio.wait_for(lease.renew(), 10)  # not SQLite's 30 s busy timeout
            assert caught.value.host == str(path)
            assert lease.lost and told == [lease]
        finally:
            blocker.close()
        with pytest.raises(LeaseLost):
            await lease.renew()


async def test_a_sqlite_file_deleted_under_the_store_gives_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "gone.db"
    async with await tgpersist.open_store(f"sqlite+aiosqlite:///{path}") as store:
        acct = store.account(NAME)
        await acct.updates.save_state(UpdateState(pts=1, qts=1, date=1, seq=1))
        for suffix in ("", "-wal", "-shm"):
            os.unlink(f"{path}{suffix}")
        with pytest.raises(DatabaseUnavailable) as caught:
            await asyncio.wait_for(acct.updates.save_state(UpdateState(pts=2, qts=1, date=1, seq=1)), 10)
        assert caught.value.host == str(path) and caught.value.port is None
        assert "deleted" in caught.value.problem
        assert caught.value.__cause__ is None and caught.value.__context__ is None


async def test_a_sqlite_database_that_turned_read_only_gives_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    async with await tgpersist.open_store(f"sqlite+aiosqlite:///{path}", poolclass=StaticPool) as store:
        acct = store.account(NAME)
        await acct.updates.save_state(UpdateState(pts=1, qts=1, date=1, seq=1))
        # Root ignores file modes, so make SQLite itself refuse writes on the store's one connection.
        async with store.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA query_only = ON")
        with pytest.raises(DatabaseUnavailable) as caught:
            await asyncio.wait_for(acct.updates.save_state(UpdateState(pts=2, qts=1, date=1, seq=1)), 10)
        assert caught.value.host == str(path) and "read-only" in caught.value.problem
        assert caught.value.__cause__ is None and caught.value.__context__ is None
        assert await acct.updates.load_state() == UpdateState(pts=1, qts=1, date=1, seq=1)
