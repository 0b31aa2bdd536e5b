"""`PeerRepository`: the peer cache (ids, access hashes, usernames, phones) of one account.

A username belongs to at most one peer per account and is matched without regard to case; saving a
peer that carries a username takes it away from whichever peer had it before. A peer's primary
username is stored in its own row; its other active usernames (collectibles, rare) in the usernames
table. Batches are written set-based in one transaction (see `bulk.BulkUpsert`), sorted by key so
that concurrent overlapping batches cannot deadlock; the usernames table is touched only when the
account has such usernames at all.

Lookups go through the account's `PeerCache` (see `tgpersist.peer_cache`) and, on a miss, read one
statement outside a transaction (`Database.fetch`). Rows the database returns were validated when
they were saved, so they become `Peer`s without validating again.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import operator
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import BigInteger, String, and_, bindparam, delete, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from tgpersist import metrics
from tgpersist.clock import utcnow
from tgpersist.domain import Peer, PeerType
from tgpersist.domain.peer import CHANNEL_OFFSET, PeerKind, from_dialog_id, to_dialog_id
from tgpersist.errors import InvalidArgument
from tgpersist.models import Models
from tgpersist.peer_cache import PeerCache, clear_when_host_ends
from tgpersist.repositories.scope import Scope
from tgpersist.sql import bulk, errors, reads, statements
from tgpersist.validation import check_phone, check_text, phone_key, read_back

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
#: Column order of the rows `save_many` writes (session_name and updated_at are shared by a batch).
PEER_SHARED = ("session_name", "updated_at")
PEER_COLUMNS = (
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
    "username",
    "username_key",
)
#: Columns of the usernames table (a peer's usernames other than its primary one).
NAME_COLUMNS = ("session_name", "username_key", "peer_id", "username", "position")
#: Column order of the rows lookups read (one row per extra username, LEFT JOIN).
READ_COLUMNS = ("peer_id", "type", *PEER_FIELDS, "updated_at", "username", "extra", "position")

#: Tries of a peer upsert that meets usernames held by other peers. On SQLite the second always
#: succeeds (writers take turns); on PostgreSQL each failure means another transaction committed
#: one of the batch's usernames meanwhile, and the next try takes it over.
TAKEOVER_ATTEMPTS = 8

#: Batches up to this size are cached as written; larger ones (imports) only refresh peers already
#: cached, so that a bulk load does not push the working set out of the cache.
WRITE_THROUGH_LIMIT = 256

_TYPES = {t.value: t for t in PeerType}
#: Each type's id space, by type value (a str key hashes faster than an Enum member).
_SPACE = {t.value: t.kind for t in PeerType}


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
    kind = _SPACE[peer.type._value_]
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


def _peer_row(dialog_id: int, peer: Peer, username: str | None, key: str | None) -> tuple[Any, ...]:
    """The `PEER_COLUMNS` row of `peer`, with the primary username (and its key) it is stored with."""
    phone = peer.phone_number
    return (
        dialog_id,
        peer.type._value_,
        peer.access_hash,
        peer.first_name,
        peer.last_name,
        peer.title,
        phone,
        None if phone is None else _phone_digits(phone),
        peer.is_bot,
        peer.photo_id,
        peer.language,
        username,
        key,
    )


def _usernames(primary: str | None, extras: builtins.list[tuple[int, str]]) -> tuple[str, ...]:
    """`Peer.usernames` from the stored primary and the other usernames with their positions: the
    primary goes to the one position the others leave free."""
    if not extras:
        return () if primary is None else (primary,)
    extras.sort()
    names = [name for _, name in extras]
    if primary is not None:
        free = next((i for i, (position, _) in enumerate(extras) if position != i), len(extras))
        names.insert(free, primary)
    return tuple(names)


def fold(rows: Iterable[Sequence[Any]]) -> builtins.list[Peer]:
    """Fold lookup rows (`READ_COLUMNS`, one per extra username, ordered by peer) into peers."""
    result: builtins.list[Peer] = []
    current: Sequence[Any] | None = None
    extras: builtins.list[tuple[int, str]] = []

    def flush() -> None:
        if current is not None:
            (peer_id, kind, access_hash, first, last, title, phone, is_bot, photo, language, updated) = (
                current[:11]
            )
            primary = current[11]
            result.append(
                trusted_peer(
                    _bare_id(peer_id),
                    _TYPES[kind],
                    access_hash,
                    primary,
                    _usernames(primary, extras),
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
            current, extras = row, []
        if row[12] is not None:
            extras.append((row[13], row[12]))
    flush()
    return result


@dataclasses.dataclass
class _Batch:
    """The rows one `save_many` writes, and who ends up owning each username."""

    ids: builtins.list[int]  # dialog ids, sorted
    peer_rows: builtins.list[tuple[Any, ...]]  # PEER_COLUMNS
    name_rows: builtins.list[tuple[Any, ...]]  # NAME_COLUMNS: usernames other than the primary
    keys: builtins.list[str]  # every username key the batch writes
    owner: dict[str, int]  # username key -> dialog id of the batch peer that gets it

    @classmethod
    def of(cls, session: str, batch: dict[int, Peer]) -> _Batch:
        """The rows of `batch` (dialog id -> peer, in the order the peers came)."""
        ids = sorted(batch)
        owner: dict[str, int] = {}
        peer_rows: builtins.list[tuple[Any, ...]] = []
        append = peer_rows.append
        # The usual batch in one pass: each peer has its primary username at most, none shared.
        for dialog_id in ids:
            peer = batch[dialog_id]
            names = peer.usernames
            username = key = None
            if names:
                if len(names) > 1 or peer.username is None:
                    return cls._general(session, batch, ids)
                username = names[0]  # the primary, spelled as in `usernames`
                key = username.lower()
                if key in owner:
                    return cls._general(session, batch, ids)
                owner[key] = dialog_id
            append(_peer_row(dialog_id, peer, username, key))
        return cls(ids, peer_rows, [], builtins.list(owner), owner)

    @classmethod
    def _general(cls, session: str, batch: dict[int, Peer], ids: builtins.list[int]) -> _Batch:
        """Any batch: peers with several usernames, and usernames that later peers take over."""
        owner: dict[str, int] = {}  # a later peer in the batch takes a username over
        several = False  # a peer with a username besides its primary, or without a primary
        for dialog_id, peer in batch.items():
            names = peer.usernames
            if not names:
                continue
            if len(names) == 1:
                owner[names[0].lower()] = dialog_id
                several = several or peer.username is None
            else:
                several = True
                for name in names:
                    owner[name.lower()] = dialog_id
        peer_rows: builtins.list[tuple[Any, ...]] = []
        name_rows: builtins.list[tuple[Any, ...]] = []
        for dialog_id in ids:
            peer = batch[dialog_id]
            username: str | None = None
            key: str | None = None
            if peer.username is not None:
                key = peer.username.lower()
                if owner[key] == dialog_id:
                    username = peer.username
                    if username not in peer.usernames:  # stored as spelled in `usernames`
                        username = next(n for n in peer.usernames if n.lower() == key)
                else:
                    key = None
            peer_rows.append(_peer_row(dialog_id, peer, username, key))
            if several and len(peer.usernames) > (username is not None):
                kept = [n for n in peer.usernames if owner[n.lower()] == dialog_id]
                name_rows.extend(
                    (session, n.lower(), dialog_id, n, position)
                    for position, n in enumerate(kept)
                    if n.lower() != key
                )
        name_rows.sort(key=operator.itemgetter(1))
        return cls(ids, peer_rows, name_rows, builtins.list(owner), owner)


# -- statements, built once per placement and dialect -----------------------------------------------
class _Statements:
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

    async def write(self, conn: AsyncConnection, session: str, stamp: Any, batch: _Batch) -> None:
        """Write `batch` in the caller's transaction, moving usernames from the peers that had them."""
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
        for attempt in range(1, TAKEOVER_ATTEMPTS + 1):
            try:
                async with bulk.retry_point(conn):
                    await self.upsert_peers.execute(conn, batch.peer_rows, (session, stamp))
                break
            except IntegrityError as error:
                if errors.is_missing_parent(error) or attempt == TAKEOVER_ATTEMPTS:
                    raise
                # A username of the batch is another peer's primary (or a batch peer's until this
                # write): take every batch username from whoever holds it, then write again.
                await self.clear_primaries.execute(conn, session, batch.keys)
        await self.insert_names.execute(conn, batch.name_rows)


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
            dialog_id = _dialog_id(peer)
            batch.pop(dialog_id, None)  # re-inserted last: it also wins the usernames it shares
            batch[dialog_id] = peer
        if not batch:
            return 0
        name = self._scope.name
        now = utcnow()
        stamp = statements.driver_value(self._sql.stamp, now, self._dialect)
        rows = _Batch.of(name, batch)
        sql = self._sql

        async def work(conn: AsyncConnection) -> None:
            await sql.write(conn, name, stamp, rows)

        cache = self._shared
        if cache is None:
            await self._scope.write(work)
            return len(batch)
        if self._host is not None:
            await self._host_write(cache, lambda: self._scope.write(work))
            return len(batch)
        ids = rows.ids
        phones = {row[7] for row in rows.peer_rows if row[7] is not None}
        refresh = ids if len(ids) <= WRITE_THROUGH_LIMIT else cache.cached(ids)
        token = cache.begin_write(ids, rows.keys, phones)
        stored: builtins.list[tuple[int, Peer]] = []
        owner = rows.owner
        try:
            await self._scope.write(work)
            for dialog_id in refresh:
                peer = batch[dialog_id]
                # A peer that lost a username to a later peer of this batch is read back instead.
                if all(owner[u.lower()] == dialog_id for u in peer.usernames):
                    stored.append((dialog_id, _as_stored(peer, now)))
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
