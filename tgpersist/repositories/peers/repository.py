"""`PeerRepository`: the peer cache (ids, access hashes, usernames, phones) of one account.

A username belongs to at most one peer per account and is matched without regard to case; saving a
peer that carries a username takes it away from whichever peer had it before. A peer's primary
username is stored in its own row; its other active usernames (collectibles, rare) in the usernames
table. Batches are written set-based in one transaction (`statements.PeerStatements.write`); on
PostgreSQL a batch first locks what it will touch in one global order (`takeover`), so concurrent
batches that trade usernames take turns instead of deadlocking.

Lookups go through the account's `PeerCache` (see `tgpersist.peer_cache`) and, on a miss, read one
statement outside a transaction (`Database.fetch`). Rows the database returns were validated when
they were saved, so they become `Peer`s without validating again.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist import metrics
from tgpersist.domain import Peer, PeerType
from tgpersist.domain.peer import from_dialog_id, to_dialog_id
from tgpersist.errors import InvalidArgument
from tgpersist.peer_cache import PeerCache, clear_when_host_ends
from tgpersist.repositories.peers.batch import Batch
from tgpersist.repositories.peers.rows import as_stored, dialog_id_of, fold
from tgpersist.repositories.peers.statements import TAKEOVER_ATTEMPTS, statements_for
from tgpersist.repositories.scope import Scope
from tgpersist.sql import errors, reads, statements
from tgpersist.validation import check_int, check_phone, check_text, phone_key, read_back

T = TypeVar("T")

#: Batches up to this size are cached as written; larger ones (imports) only refresh peers already
#: cached, so that a bulk load does not push the working set out of the cache.
WRITE_THROUGH_LIMIT = 256


class PeerRepository:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        db = scope.db
        self._dialect = db.engine.dialect
        self._sql = statements_for(scope.models, self._dialect)
        self._peers = self._sql.peers
        # Inside a host's transaction reads bypass the cache (they may see uncommitted rows) and
        # writes clear it; otherwise the account's cache is read and written through.
        self._host = db.host_session
        self._shared: PeerCache | None = db.peer_caches.account(scope.name)
        self._cache = self._shared if self._host is None else None

    @property
    def cache(self) -> PeerCache | None:
        """This account's peer cache (None when it is off or inside a host's transaction)."""
        return self._cache

    async def save(self, peer: Peer) -> None:
        await self.save_many([peer])

    @metrics.timed("peers.save_many")
    async def save_many(self, peers: Iterable[Peer]) -> int:
        """Insert or replace peers in one transaction; the last of duplicates wins. Returns the count."""
        batch: dict[int, Peer] = {}
        for peer in peers:
            if type(peer) is not Peer and not isinstance(peer, Peer):
                raise InvalidArgument("peers", f"expected Peer items, got {type(peer).__name__}")
            dialog_id = dialog_id_of(peer)
            batch.pop(dialog_id, None)  # re-inserted last: it also wins the usernames it shares
            batch[dialog_id] = peer
        if not batch:
            return 0
        name = self._scope.name
        now = self._scope.now()
        stamp = statements.driver_value(self._sql.stamp, now, self._dialect)
        rows = Batch.of(name, batch)
        sql = self._sql

        async def work(conn: AsyncConnection) -> None:
            await sql.write(conn, name, stamp, rows)

        async def write() -> None:
            for attempt in range(1, TAKEOVER_ATTEMPTS + 1):
                try:
                    await self._scope.write(work)
                    return
                except IntegrityError as error:
                    # PostgreSQL, under the takeover locks: only a writer outside the protocol (an
                    # older tgpersist, a host's own SQL) can have given a username away meanwhile;
                    # the next transaction sees and takes it over.
                    if sql.locks is None or not errors.is_unique_violation(error):
                        raise
                    if attempt == TAKEOVER_ATTEMPTS:
                        raise

        cache = self._shared
        if cache is None:
            await write()
            return len(batch)
        if self._host is not None:
            await self._host_write(cache, write)
            return len(batch)
        ids = rows.ids
        phones = {row[7] for row in rows.peer_rows if row[7] is not None}
        refresh = ids if len(ids) <= WRITE_THROUGH_LIMIT else cache.cached(ids)
        token = cache.begin_write(ids, rows.keys, phones)
        stored: builtins.list[tuple[int, Peer]] = []
        owner = rows.owner
        try:
            await write()
            for dialog_id in refresh:
                peer = batch[dialog_id]
                # A peer that lost a username to a later peer of this batch is read back instead.
                if all(owner[u.lower()] == dialog_id for u in peer.usernames):
                    stored.append((dialog_id, as_stored(peer, now)))
        finally:
            cache.end_write(token, stored)
        return len(batch)

    async def get(self, peer_id: int, peer_type: PeerType | None = None) -> Peer | None:
        """A peer by Bot API ("marked") id, or by bare id when `peer_type` says which kind it is."""
        cache = self._cache
        if cache is not None and peer_type is None and type(peer_id) is int:
            found = cache.get(peer_id)  # a cached key is a valid id: same answer as after validation
            if found is not None:
                return found
        dialog_id = self._dialog_id(peer_id, peer_type)
        if cache is not None and peer_type is not None:
            found = cache.get(dialog_id)
            if found is not None:
                return found
        return await self._read(self._sql.by_id, {"peer_id": dialog_id})

    async def get_by_username(self, username: str) -> Peer | None:
        """The peer that currently has `username` (case-insensitive; a leading @ is ignored)."""
        cache = self._cache
        if cache is not None and type(username) is str:
            found = cache.get_by_username(username.removeprefix("@").lower())
            if found is not None:
                return found
        key = check_text("username", username, 65).removeprefix("@").lower()
        return await self._read(self._sql.by_username, {"key": key})

    async def get_by_phone(self, phone: str) -> Peer | None:
        """The peer with this phone number (leading + and spaces ignored); the newest if several."""
        key = phone_key(check_phone("phone", phone))
        cache = self._cache
        if cache is not None:
            found = cache.get_by_phone(key)
            if found is not None:
                return found
        return await self._read(self._sql.by_phone, {"key": key}, phone=key)

    async def list(self) -> builtins.list[Peer]:
        """Every peer of the account, ordered by Bot API id."""
        stmt = self._sql.select().where(self._peers.c.session_name == self._scope.name)

        async def work(conn: AsyncConnection) -> builtins.list[Peer]:
            return read_back(self._scope.name, fold, await conn.execute(stmt), field="peer row")

        return await self._scope.read(work)

    async def pages(self, size: int = 5000) -> AsyncIterator[builtins.list[Peer]]:
        """Every peer of the account in `list()` order, `size` peers a read (so that a long export can
        report progress). Inside a host's transaction (`store.account(name, session=...)`) the pages
        are one consistent snapshot; on the store's own engine each page is read on its own."""
        check_int("size", size, 1, 1_000_000)
        peers = self._peers
        after: Any = None
        while True:
            keys = select(peers.c.peer_id).where(peers.c.session_name == self._scope.name)
            if after is not None:
                keys = keys.where(peers.c.peer_id > after)
            keys = keys.order_by(peers.c.peer_id).limit(size)
            stmt = self._sql.select().where(
                peers.c.session_name == self._scope.name, peers.c.peer_id.in_(keys.scalar_subquery())
            )

            async def work(conn: AsyncConnection, stmt: Any = stmt) -> tuple[builtins.list[Peer], Any]:
                rows = (await conn.execute(stmt)).all()
                last = rows[-1][0] if rows else None  # the stored key of the page's last peer
                return read_back(self._scope.name, fold, rows, field="peer row"), last

            page, after = await self._scope.read(work)
            if not page:
                return
            yield page
            if len(page) < size:
                return

    async def count(self) -> int:
        peers = self._peers
        stmt = select(func.count()).select_from(peers).where(peers.c.session_name == self._scope.name)

        async def work(conn: AsyncConnection) -> int:
            return int((await conn.execute(stmt)).scalar_one())

        return await self._scope.read(work)

    async def delete(self, peer_id: int, peer_type: PeerType | None = None) -> bool:
        """Forget a peer and its usernames. True if it was stored."""
        dialog_id = self._dialog_id(peer_id, peer_type)
        peers = self._peers
        stmt = delete(peers).where(peers.c.session_name == self._scope.name, peers.c.peer_id == dialog_id)

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(stmt)).rowcount > 0

        cache = self._shared
        if cache is None:
            return await self._scope.db.run(work, write=True)
        if self._host is not None:
            return await self._host_write(cache, lambda: self._scope.db.run(work, write=True))
        token = cache.begin_write([dialog_id])
        try:
            return await self._scope.db.run(work, write=True)
        finally:
            cache.end_write(token)

    @metrics.timed("peers.read")
    async def _read(
        self, query: reads.CompiledRead, values: dict[str, Any], phone: str | None = None
    ) -> Peer | None:
        cache = self._cache
        if cache is not None:
            metrics.peer_cache_lookups.misses += 1
        token = None if cache is None else cache.token()
        values["session_name"] = self._scope.name
        found = read_back(self._scope.name, fold, await self._scope.db.fetch(query, values), field="peer row")
        if not found:
            return None
        peer = found[0]
        if cache is not None:
            cache.fill(token, dialog_id_of(peer), peer, phone)
        return peer

    async def _host_write(self, cache: PeerCache, write: Callable[[], Awaitable[T]]) -> T:
        """A write inside a host's transaction: the shared cache is cleared now, after the write, and
        when the host's transaction ends (until then other readers may cache the old rows)."""
        assert self._host is not None
        cache.invalidate()
        try:
            return await write()
        finally:
            cache.invalidate()
            clear_when_host_ends(self._host, cache)

    @staticmethod
    def _dialog_id(peer_id: int, peer_type: PeerType | None) -> int:
        if peer_type is None:
            bare, kind = from_dialog_id(peer_id)
            return to_dialog_id(bare, kind)
        if not isinstance(peer_type, PeerType):
            raise InvalidArgument("peer_type", f"expected a PeerType, got {type(peer_type).__name__}")
        return to_dialog_id(peer_id, peer_type)
