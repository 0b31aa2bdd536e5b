"""Store-wide housekeeping: delete what has expired, for every account at once.

Expired dedup keys and conversations are already invisible to readers; pruning only reclaims their rows.
Run it from time to time (a cron job or a periodic task); any one process may do it for all.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table, delete
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist.database import Database


@dataclass(frozen=True, slots=True)
class Pruned:
    """How many rows `Store.prune()` deleted, by kind."""

    dedup_keys: int = 0
    conversations: int = 0

    @property
    def total(self) -> int:
        return self.dedup_keys + self.conversations


async def _delete_expired(db: Database, table: Table) -> int:
    async def work(conn: AsyncConnection) -> int:
        stmt = delete(table).where(table.c.expires_at <= db.clock.now())
        return (await conn.execute(stmt)).rowcount

    return await db.run(work, write=True)


async def prune(db: Database) -> Pruned:
    """Delete every account's expired dedup keys and conversations (one short transaction each)."""
    models = db.models
    return Pruned(
        dedup_keys=await _delete_expired(db, models.table(models.DedupKey)),
        conversations=await _delete_expired(db, models.table(models.Conversation)),
    )
