"""`Database.run`: write transactions of one process take turns in arrival order on SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

import tgpersist


async def test_sqlite_writes_of_one_process_take_turns_in_arrival_order(tmp_path: Path) -> None:
    """SQLite only by nature (a file's write lock; PostgreSQL writers lock rows, not the database)."""
    async with await tgpersist.open_store(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}") as store:
        await _writes_take_turns(store)


async def _writes_take_turns(store: tgpersist.Store) -> None:
    db = store.account("a").peers._scope.db
    order: list[int] = []

    def writer(number: int) -> object:
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(text("SELECT 1"))
            await asyncio.sleep(0.002)  # others arrive meanwhile and must wait their turn
            order.append(number)

        return db.run(work, write=True)

    await asyncio.gather(*(writer(n) for n in range(30)))
    assert order == list(range(30))
