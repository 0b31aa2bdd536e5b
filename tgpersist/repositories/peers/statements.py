"""`PeerStatements`: the peer repository's statements, and how a batch of peers is written."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import BigInteger, String, and_, bindparam, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from tgpersist.models import Models
from tgpersist.repositories.peers.batch import Batch
from tgpersist.repositories.peers.rows import NAME_COLUMNS, PEER_COLUMNS, PEER_SHARED, READ_COLUMNS
from tgpersist.repositories.peers.takeover import TakeoverLocks
from tgpersist.sql import bulk, errors, reads

#: Tries of a peer upsert that meets usernames held by other peers on SQLite, where the second
#: always succeeds (writers take turns). On PostgreSQL the takeover locks leave nothing to retry.
TAKEOVER_ATTEMPTS = 8


class PeerStatements:
    """Every statement of the peer repository, built once per placement and dialect."""

    def __init__(self, models: Models, sa_dialect: Dialect) -> None:
        peers = self.peers = models.table(models.Peer)
        names = self.names = models.table(models.Username)
        self.stamp = peers.c.updated_at
        self.upsert_peers = bulk.BulkUpsert(
            peers,
            sa_dialect,
            PEER_COLUMNS,
            ("session_name", "peer_id"),
            (*PEER_COLUMNS[1:], "updated_at"),
            shared=PEER_SHARED,
            stable=("username_key", "phone_key"),
        )
        # Takes primary usernames away from the peers that hold them (before giving them to others).
        self.clear_primaries = bulk.BulkDelete(
            peers, sa_dialect, "session_name", "username_key", clear=("username", "username_key")
        )
        self.insert_names = bulk.BulkUpsert(
            names, sa_dialect, NAME_COLUMNS, ("session_name", "username_key"), NAME_COLUMNS[2:]
        )
        self.delete_names_of = bulk.BulkDelete(names, sa_dialect, "session_name", "peer_id")
        self.delete_names = bulk.BulkDelete(names, sa_dialect, "session_name", "username_key")
        #: PostgreSQL: the takeover locks a batch takes before writing (SQLite has one writer at a time).
        self.locks = TakeoverLocks(peers, names, sa_dialect) if sa_dialect.name == "postgresql" else None
        session = bindparam("session_name", type_=String)
        self.has_names = reads.CompiledRead(
            select(names.c.peer_id).where(names.c.session_name == session).limit(1), sa_dialect
        )
        self.by_id = reads.CompiledRead(
            self.select().where(
                peers.c.session_name == session, peers.c.peer_id == bindparam("peer_id", type_=BigInteger)
            ),
            sa_dialect,
        )
        key = bindparam("key", type_=String)
        owner = func.coalesce(
            select(peers.c.peer_id)
            .where(peers.c.session_name == session, peers.c.username_key == key)
            .scalar_subquery(),
            select(names.c.peer_id)
            .where(names.c.session_name == session, names.c.username_key == key)
            .scalar_subquery(),
        )
        self.by_username = reads.CompiledRead(
            self.select().where(peers.c.session_name == session, peers.c.peer_id == owner), sa_dialect
        )
        newest = (
            select(peers.c.peer_id)
            .where(peers.c.session_name == session, peers.c.phone_key == bindparam("key", type_=String))
            .order_by(peers.c.updated_at.desc(), peers.c.peer_id)
            .limit(1)
            .scalar_subquery()
        )
        self.by_phone = reads.CompiledRead(
            self.select().where(peers.c.session_name == session, peers.c.peer_id == newest), sa_dialect
        )

    def select(self) -> Select[Any]:
        """Peers LEFT JOIN their other usernames, in `READ_COLUMNS` order (filter on session_name)."""
        peers, names = self.peers, self.names
        join = peers.outerjoin(
            names, and_(names.c.session_name == peers.c.session_name, names.c.peer_id == peers.c.peer_id)
        )
        columns = [peers.c[c] for c in READ_COLUMNS[:-2]] + [names.c.username, names.c.position]
        return select(*columns).select_from(join).order_by(peers.c.peer_id, names.c.position)

    async def write(self, conn: AsyncConnection, session: str, stamp: Any, batch: Batch) -> None:
        """Write `batch` in the caller's transaction, moving usernames from the peers that had them.

        PostgreSQL: under the takeover locks (see `takeover`), so the peers that hold the batch's
        usernames are known and cleared first, and the upsert meets no other holder. SQLite (one
        writer at a time): optimistically, clearing holders only if the upsert meets one.
        """
        holders: dict[str, int] | None = None
        if self.locks is not None:
            holders = await self.locks.acquire(conn, session, batch.ids, batch.keys)
        names_stored = bool(batch.name_rows) or bool(
            (
                await conn.exec_driver_sql(
                    self.has_names.sql, self.has_names.params({"session_name": session})
                )
            ).fetchall()
        )
        if names_stored:
            await self.delete_names_of.execute(conn, session, batch.ids)  # the peers' former ones
            await self.delete_names.execute(conn, session, batch.keys)  # taken from other peers
            await self.clear_primaries.execute(conn, session, [row[1] for row in batch.name_rows])
        if holders is not None:
            owner = batch.owner
            taken = [key for key, peer_id in holders.items() if key in owner and owner[key] != peer_id]
            await self.clear_primaries.execute(conn, session, taken)
            await self.upsert_peers.execute(conn, batch.peer_rows, (session, stamp))
        else:
            await self._upsert_taking_over(conn, session, stamp, batch)
        await self.insert_names.execute(conn, batch.name_rows)

    async def _upsert_taking_over(
        self, conn: AsyncConnection, session: str, stamp: Any, batch: Batch
    ) -> None:
        for attempt in range(1, TAKEOVER_ATTEMPTS + 1):
            try:
                async with bulk.retry_point(conn):
                    await self.upsert_peers.execute(conn, batch.peer_rows, (session, stamp))
                return
            except IntegrityError as error:
                if errors.is_missing_parent(error) or attempt == TAKEOVER_ATTEMPTS:
                    raise
                # A username of the batch is another peer's primary (or a batch peer's until this
                # write): take every batch username from whoever holds it, then write again.
                await self.clear_primaries.execute(conn, session, batch.keys)


@functools.lru_cache(maxsize=64)
def statements_for(models: Models, sa_dialect: Dialect) -> PeerStatements:
    return PeerStatements(models, sa_dialect)
