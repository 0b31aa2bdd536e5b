"""kill -9 in the middle of a big write: afterwards the batch is there entirely or not at all, the
database is not corrupt (SQLite `PRAGMA integrity_check`), and the store works on as before.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sqlite3
import time
from multiprocessing.synchronize import Event

import asyncpg
from sqlalchemy.engine.url import make_url

import tgpersist
from tgpersist import Peer, PeerType

ACCOUNT = "bot"
SPAWN = multiprocessing.get_context("spawn")
BIG = 200_000


def big_batch() -> list[Peer]:
    """BIG users; every other one has a username, so the usernames table is part of the batch too."""
    return [
        Peer(i, PeerType.USER, i * 3, username=f"user{i}" if i % 2 else None, first_name="big")
        for i in range(1, BIG + 1)
    ]


async def _save_big_batch(url: str, ready: Event, done: Event) -> None:
    async with await tgpersist.open_store(url) as store:
        peers = big_batch()
        ready.set()
        await store.account(ACCOUNT).peers.save_many(peers)
        done.set()
        await asyncio.sleep(60)  # wait to be killed


def save_big_batch(url: str, ready: Event, done: Event) -> None:
    asyncio.run(_save_big_batch(url, ready, done))


def sqlite_writer_active(path: str) -> bool:
    """Whether another connection holds the write lock, i.e. is inside a write transaction."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as error:
        assert "locked" in str(error) or "busy" in str(error)
        return True
    finally:
        conn.close()


async def postgres_writer_active(url: str) -> bool:
    """Whether another backend on this database is in a transaction that has written something."""
    u = make_url(url)
    conn = await asyncpg.connect(host=u.host, port=u.port, user=u.username, database=u.database)
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
        )
        return bool(found)
    finally:
        await conn.close()


async def test_kill_9_during_a_big_save_many_leaves_all_or_nothing(backend: str, db_url: str) -> None:
    async with await tgpersist.open_store(db_url) as store:  # migrated, with a row that must survive
        await store.account(ACCOUNT).peers.save(Peer(BIG + 1, PeerType.USER, 1, username="keeper"))
    path = make_url(db_url).database if backend == "sqlite" else None
    ready, done = SPAWN.Event(), SPAWN.Event()
    writer = SPAWN.Process(target=save_big_batch, args=(db_url, ready, done))
    writer.start()
    try:
        assert await asyncio.to_thread(ready.wait, 120), "the writer never got ready"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if path is not None:
                active = await asyncio.to_thread(sqlite_writer_active, path)
            else:
                active = await postgres_writer_active(db_url)
            if active or done.is_set():
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # a few statements further into the transaction
        committed = done.is_set()
        os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
    finally:
        writer.kill()  # already dead unless the test failed before the kill
        await asyncio.to_thread(writer.join, 30)
    assert writer.exitcode == -signal.SIGKILL

    if path is not None:
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    async with await tgpersist.open_store(db_url) as store:
        peers = store.account(ACCOUNT).peers
        count = await peers.count()
        assert count in {1, BIG + 1}  # the keeper, plus all of the batch or none of it
        batch_there = count == BIG + 1
        if committed:
            assert batch_there
        keeper = await peers.get_by_username("keeper")
        assert keeper is not None and keeper.id == BIG + 1
        last = await peers.get_by_username(f"user{BIG - 1}")
        if batch_there:
            assert last is not None and last.access_hash == (BIG - 1) * 3
            assert (await peers.get(2)) == Peer(2, PeerType.USER, 6, first_name="big")
        else:
            assert last is None and await peers.get(2) is None
        # No lock, half-written row or stale transaction is left behind: the same batch goes in now.
        assert await peers.save_many(big_batch()) == BIG
        assert await peers.count() == BIG + 1
        again = await peers.get_by_username(f"user{BIG - 1}")
        assert again is not None and again.access_hash == (BIG - 1) * 3
    if path is not None:
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
