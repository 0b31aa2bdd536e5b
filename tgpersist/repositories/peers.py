"""`PeerRepository`: the peer cache (ids, access hashes, usernames, phones) of one account.

A username belongs to at most one peer per account and is matched without regard to case; saving a
peer that carries a username takes it away from whichever peer had it before. Batches are written
set-based in one transaction (one driver call per statement: executemany on SQLite, column arrays on
PostgreSQL), sorted by key so that concurrent overlapping batches cannot deadlock.

Lookups go through the account's `PeerCache` (see `tgpersist.peer_cache`) and, on a miss, read one
statement outside a transaction (`Database.fetch`). Rows the database returns were validated when
they were saved, so they become `Peer`s without validating again.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import BigInteger, String, and_, bindparam, delete, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from tgpersist import dialect
from tgpersist.clock import utcnow
from tgpersist.database import JoinedDatabase
from tgpersist.domain import Peer, PeerType
from tgpersist.domain.peer import CHANNEL_OFFSET, PeerKind, from_dialog_id, to_dialog_id
from tgpersist.errors import InvalidArgument
from tgpersist.models import Models
from tgpersist.peer_cache import PeerCache, clear_when_host_ends
from tgpersist.repositories.scope import Scope
from tgpersist.validation import check_phone, check_text, phone_key

T = TypeVar("T")

PEER_FIELDS = (
    "access_hash",
    "first_name",
    "last_name",
    "title",
    "phone_number",
    "is_bot",
    "photo_id",
    "language",
)
#: Column order of the rows `save_many` writes.
PEER_COLUMNS = (
    "session_name",
    "peer_id",
    "type",
    "access_hash",
    "first_name",
    "last_name",
    "title",
    "phone_number",
    "phone_key",
    "is_bot",
    "photo_id",
    "language",
    "updated_at",
)
NAME_COLUMNS = ("session_name", "username_key", "peer_id", "username", "position", "is_primary")
#: Column order of the rows lookups read (one row per username, LEFT JOIN).
READ_COLUMNS = ("peer_id", "type", *PEER_FIELDS, "updated_at", "username", "is_primary")

#: Batches up to this size are cached as written; larger ones (imports) only refresh peers already
#: cached, so that a bulk load does not push the working set out of the cache.
WRITE_THROUGH_LIMIT = 256

#: Username batches from this size on first make sure PostgreSQL has statistics for the peers table
#: (see `dialect.analyze_if_never_analyzed`); smaller ones cannot go quadratic by much.
ANALYZE_ROWS = 500

_TYPES = {t.value: t for t in PeerType}
_KIND = {t: t.kind for t in PeerType}


# -- Peer objects from trusted values ---------------------------------------------------------------
_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Peer))
_SETTERS = tuple(getattr(Peer, name).__set__ for name in _FIELD_NAMES)
_KNOWN_FIELDS = (
    "id",
    "type",
    "access_hash",
    "username",
    "usernames",
    "first_name",
    "last_name",
    "title",
    "phone_number",
    "is_bot",
    "photo_id",
    "language",
    "updated_at",
)
#: The fast path sets every field itself, so it is used only while `Peer` has exactly these fields.
_FAST = _FIELD_NAMES == _KNOWN_FIELDS


def trusted_peer(*values: Any) -> Peer:
    """A `Peer` from field values (in `Peer`'s field order) that were validated before, such as rows
    read back from the store or a copy of a constructed `Peer`: skips `__post_init__` (~10x faster)."""
    if not _FAST:
        return Peer(**dict(zip(_FIELD_NAMES, values, strict=True)))
    peer: Peer = object.__new__(Peer)
    for setter, value in zip(_SETTERS, values, strict=True):
        setter(peer, value)
    return peer


def _as_stored(peer: Peer, updated_at: datetime) -> Peer:
    """`peer` as the database now holds it: the same values, stamped with the write's time, and the
    primary username spelled as in `usernames` (the row it is stored in)."""
    username = peer.username
    if username is not None and username not in peer.usernames:
        key = username.lower()
        username = next(name for name in peer.usernames if name.lower() == key)
    return trusted_peer(
        peer.id,
        peer.type,
        peer.access_hash,
        username,
        peer.usernames,
        peer.first_name,
        peer.last_name,
        peer.title,
        peer.phone_number,
        peer.is_bot,
        peer.photo_id,
        peer.language,
        updated_at,
    )


def _dialog_id(peer: Peer) -> int:
    """`peer.dialog_id` without re-validating the (already validated) bare id."""
    kind = _KIND[peer.type]
    if kind is PeerKind.USER:
        return peer.id
    if kind is PeerKind.CHAT:
        return -peer.id
    return -CHANNEL_OFFSET - peer.id


def _phone_digits(phone: str) -> str:
    """`phone_key` of a phone number a `Peer` already validated (digits, an optional +, spaces), fast."""
    return phone.replace(" ", "").removeprefix("+")


def _bare_id(dialog_id: int) -> int:
    if dialog_id > 0:
        return dialog_id
    return -dialog_id if dialog_id >= -(CHANNEL_OFFSET - 1) else -dialog_id - CHANNEL_OFFSET


def fold(rows: Iterable[Sequence[Any]]) -> builtins.list[Peer]:
    """Fold lookup rows (`READ_COLUMNS`, one per username, ordered by peer and position) into peers."""
    result: builtins.list[Peer] = []
    current: Sequence[Any] | None = None
    usernames: builtins.list[str] = []
    primary: str | None = None

    def flush() -> None:
        if current is not None:
            (peer_id, kind, access_hash, first, last, title, phone, is_bot, photo, language, updated) = (
                current[:11]
            )
            result.append(
                trusted_peer(
                    _bare_id(peer_id),
                    _TYPES[kind],
                    access_hash,
                    primary,
                    tuple(usernames),
                    first,
                    last,
                    title,
                    phone,
                    is_bot,
                    photo,
                    language,
                    updated,
                )
            )

    for row in rows:
        if current is None or row[0] != current[0]:
            flush()
            current, usernames, primary = row, [], None
        username = row[11]
        if username is not None:
            usernames.append(username)
            if row[12]:
                primary = username
    flush()
    return result


# -- statements, built once per placement and dialect -----------------------------------------------
class _Statements:
    def __init__(self, models: Models, sa_dialect: Dialect) -> None:
        peers = self.peers = models.table(models.Peer)
        names = self.names = models.table(models.Username)
        self.stamp = peers.c.updated_at
        self.upsert_peers = dialect.BulkUpsert(
            peers, sa_dialect, PEER_COLUMNS, ("session_name", "peer_id"), PEER_COLUMNS[2:]
        )
        self.upsert_names = dialect.BulkUpsert(
            names, sa_dialect, NAME_COLUMNS, ("session_name", "username_key"), NAME_COLUMNS[2:]
        )
        self.delete_names_of = dialect.BulkDelete(names, sa_dialect, "session_name", "peer_id")
        session = bindparam("session_name", type_=String)
        self.by_id = dialect.CompiledRead(
            self.select().where(
                peers.c.session_name == session, peers.c.peer_id == bindparam("peer_id", type_=BigInteger)
            ),
            sa_dialect,
        )
        owner = (
            select(names.c.peer_id)
            .where(names.c.session_name == session, names.c.username_key == bindparam("key", type_=String))
            .scalar_subquery()
        )
        self.by_username = dialect.CompiledRead(
            self.select().where(peers.c.session_name == session, peers.c.peer_id == owner), sa_dialect
        )
        newest = (
            select(peers.c.peer_id)
            .where(peers.c.session_name == session, peers.c.phone_key == bindparam("key", type_=String))
            .order_by(peers.c.updated_at.desc(), peers.c.peer_id)
            .limit(1)
            .scalar_subquery()
        )
        self.by_phone = dialect.CompiledRead(
            self.select().where(peers.c.session_name == session, peers.c.peer_id == newest), sa_dialect
        )

    def select(self) -> Select[Any]:
        """Peers LEFT JOIN their usernames, in `READ_COLUMNS` order (filter on session_name yourself)."""
        peers, names = self.peers, self.names
        join = peers.outerjoin(
            names, and_(names.c.session_name == peers.c.session_name, names.c.peer_id == peers.c.peer_id)
        )
        columns = [peers.c[c] for c in READ_COLUMNS[:-2]] + [names.c.username, names.c.is_primary]
        return select(*columns).select_from(join).order_by(peers.c.peer_id, names.c.position)


@functools.lru_cache(maxsize=64)
def _statements(models: Models, sa_dialect: Dialect) -> _Statements:
    return _Statements(models, sa_dialect)


class PeerRepository:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        db = scope.db
        self._dialect = db.engine.dialect
        self._sql = _statements(scope.models, self._dialect)
        self._peers = self._sql.peers
        self._names = self._sql.names
        # Inside a host's transaction reads bypass the cache (they may see uncommitted rows) and
        # writes clear it; otherwise the account's cache is read and written through.
        self._host = db.session if isinstance(db, JoinedDatabase) else None
        self._shared: PeerCache | None = db.peer_caches.account(scope.name)
        self._cache = self._shared if self._host is None else None

    @property
    def cache(self) -> PeerCache | None:
        """This account's peer cache (None when it is off or inside a host's transaction)."""
        return self._cache

    async def save(self, peer: Peer) -> None:
        await self.save_many([peer])

    async def save_many(self, peers: Iterable[Peer]) -> int:
        """Insert or replace peers in one transaction; the last of duplicates wins. Returns the count."""
        batch: dict[int, Peer] = {}
        for peer in peers:
            if not isinstance(peer, Peer):
                raise InvalidArgument("peers", f"expected Peer items, got {type(peer).__name__}")
            dialog_id = _dialog_id(peer)
            batch.pop(dialog_id, None)  # re-inserted last: it also wins the usernames it shares
            batch[dialog_id] = peer
        if not batch:
            return 0
        name = self._scope.name
        now = utcnow()
        stamp = dialect.driver_value(self._sql.stamp, now, self._dialect)
        owner: dict[str, tuple[int, str, int, bool]] = {}  # username_key -> (peer, username, pos, primary)
        for dialog_id, peer in batch.items():
            if peer.usernames:
                primary = peer.username.lower() if peer.username else None
                for position, username in enumerate(peer.usernames):
                    key = username.lower()
                    owner.pop(key, None)  # a later peer in the batch takes it over
                    owner[key] = (dialog_id, username, position, key == primary)
        ordered = sorted(batch.items())
        peer_rows = [
            (
                name,
                dialog_id,
                p.type.value,
                p.access_hash,
                p.first_name,
                p.last_name,
                p.title,
                p.phone_number,
                None if p.phone_number is None else _phone_digits(p.phone_number),
                p.is_bot,
                p.photo_id,
                p.language,
                stamp,
            )
            for dialog_id, p in ordered
        ]
        name_rows = [
            (name, key, dialog_id, username, position, primary)
            for key, (dialog_id, username, position, primary) in sorted(owner.items())
        ]
        ids = [dialog_id for dialog_id, _ in ordered]
        keys = [row[1] for row in name_rows]
        sql = self._sql

        async def work(conn: AsyncConnection) -> None:
            await sql.upsert_peers.execute(conn, peer_rows)
            if len(name_rows) >= ANALYZE_ROWS:
                await dialect.analyze_if_never_analyzed(conn, sql.peers)
            await sql.delete_names_of.execute(conn, name, ids)  # usernames the peers no longer have
            await sql.upsert_names.execute(conn, name_rows)  # the upsert takes names from other peers

        cache = self._shared
        if cache is None:
            await self._scope.write(work)
            return len(peer_rows)
        if self._host is not None:
            await self._host_write(cache, lambda: self._scope.write(work))
            return len(peer_rows)
        phones = {row[8] for row in peer_rows if row[8] is not None}
        refresh = ids if len(ids) <= WRITE_THROUGH_LIMIT else cache.cached(ids)
        token = cache.begin_write(ids, keys, phones)
        stored: builtins.list[tuple[int, Peer]] = []
        try:
            await self._scope.write(work)
            for dialog_id in refresh:
                peer = batch[dialog_id]
                # A peer that lost a username to a later peer of this batch is read back instead.
                if all(owner[u.lower()][0] == dialog_id for u in peer.usernames):
                    stored.append((dialog_id, _as_stored(peer, now)))
        finally:
            cache.end_write(token, stored)
        return len(peer_rows)

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
            return fold(await conn.execute(stmt))

        return await self._scope.read(work)

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

    async def _read(
        self, query: dialect.CompiledRead, values: dict[str, Any], phone: str | None = None
    ) -> Peer | None:
        cache = self._cache
        token = None if cache is None else cache.token()
        values["session_name"] = self._scope.name
        found = fold(await self._scope.db.fetch(query, values))
        if not found:
            return None
        peer = found[0]
        if cache is not None:
            cache.fill(token, _dialog_id(peer), peer, phone)
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
