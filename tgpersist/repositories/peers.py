"""`PeerRepository`: the peer cache (ids, access hashes, usernames, phones) of one account.

A username belongs to at most one peer per account and is matched without regard to case; saving a
peer that carries a username takes it away from whichever peer had it before. Batches are written
set-based in one transaction, sorted by key so that concurrent overlapping batches cannot deadlock.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from tgpersist import dialect
from tgpersist.clock import utcnow
from tgpersist.domain import Peer, PeerType
from tgpersist.domain.peer import from_dialog_id, to_dialog_id
from tgpersist.errors import InvalidArgument
from tgpersist.repositories.scope import Scope
from tgpersist.validation import check_phone, check_text, phone_key

#: Rows per statement when a batch is split (well under SQLite's and asyncpg's parameter limits).
CHUNK = 2000

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


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class PeerRepository:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._peers = scope.table(scope.models.Peer)
        self._names = scope.table(scope.models.Username)
        keys = ["session_name", "peer_id"]
        self._upsert = dialect.upsert(
            self._peers, scope.dialect, keys, ["type", *PEER_FIELDS, "phone_key", "updated_at"]
        )

    async def save(self, peer: Peer) -> None:
        await self.save_many([peer])

    async def save_many(self, peers: Iterable[Peer]) -> int:
        """Insert or replace peers in one transaction; the last of duplicates wins. Returns the count."""
        batch: dict[int, Peer] = {}
        for peer in peers:
            if not isinstance(peer, Peer):
                raise InvalidArgument("peers", f"expected Peer items, got {type(peer).__name__}")
            batch.pop(peer.dialog_id, None)
            batch[peer.dialog_id] = peer
        if not batch:
            return 0
        name = self._scope.name
        now = utcnow()
        owner: dict[str, tuple[int, str, int, bool]] = {}  # username_key -> (peer, username, pos, primary)
        for dialog_id, peer in batch.items():
            primary = peer.username.lower() if peer.username else None
            for position, username in enumerate(peer.usernames):
                key = username.lower()
                owner.pop(key, None)  # a later peer in the batch takes it over
                owner[key] = (dialog_id, username, position, key == primary)
        peer_rows = [
            {
                "session_name": name,
                "peer_id": dialog_id,
                "type": peer.type.value,
                **{f: getattr(peer, f) for f in PEER_FIELDS},
                "phone_key": phone_key(peer.phone_number) if peer.phone_number else None,
                "updated_at": now,
            }
            for dialog_id, peer in sorted(batch.items())
        ]
        name_rows = [
            {
                "session_name": name,
                "username_key": key,
                "peer_id": dialog_id,
                "username": username,
                "position": position,
                "is_primary": primary,
            }
            for key, (dialog_id, username, position, primary) in sorted(owner.items())
        ]
        ids = [row["peer_id"] for row in peer_rows]
        keys = [row["username_key"] for row in name_rows]
        names = self._names

        async def work(conn: AsyncConnection) -> None:
            for rows in _chunks(peer_rows):
                await conn.execute(self._upsert, list(rows))
            for chunk in _chunks(ids):
                await conn.execute(
                    delete(names).where(names.c.session_name == name, names.c.peer_id.in_(chunk))
                )
            for chunk in _chunks(keys):
                await conn.execute(
                    delete(names).where(names.c.session_name == name, names.c.username_key.in_(chunk))
                )
            for rows in _chunks(name_rows):
                await conn.execute(names.insert(), list(rows))

        await self._scope.write(work)
        return len(peer_rows)

    async def get(self, peer_id: int, peer_type: PeerType | None = None) -> Peer | None:
        """A peer by Bot API ("marked") id, or by bare id when `peer_type` says which kind it is."""
        dialog_id = self._dialog_id(peer_id, peer_type)
        return await self._one(self._peers.c.peer_id == dialog_id)

    async def get_by_username(self, username: str) -> Peer | None:
        """The peer that currently has `username` (case-insensitive; a leading @ is ignored)."""
        key = check_text("username", username, 65).removeprefix("@").lower()
        names = self._names
        owner = (
            select(names.c.peer_id)
            .where(names.c.session_name == self._scope.name, names.c.username_key == key)
            .scalar_subquery()
        )
        return await self._one(self._peers.c.peer_id == owner)

    async def get_by_phone(self, phone: str) -> Peer | None:
        """The peer with this phone number (leading + and spaces ignored); the newest if several."""
        key = phone_key(check_phone("phone", phone))
        peers = self._peers
        newest = (
            select(peers.c.peer_id)
            .where(peers.c.session_name == self._scope.name, peers.c.phone_key == key)
            .order_by(peers.c.updated_at.desc(), peers.c.peer_id)
            .limit(1)
            .scalar_subquery()
        )
        return await self._one(peers.c.peer_id == newest)

    async def list(self) -> list[Peer]:
        """Every peer of the account, ordered by Bot API id."""

        async def work(conn: AsyncConnection) -> builtins.list[Row[Any]]:
            return list(await conn.execute(self._select()))

        return self._assemble(await self._scope.read(work))

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

        return await self._scope.db.run(work, write=True)

    @staticmethod
    def _dialog_id(peer_id: int, peer_type: PeerType | None) -> int:
        if peer_type is None:
            bare, kind = from_dialog_id(peer_id)
            return to_dialog_id(bare, kind)
        if not isinstance(peer_type, PeerType):
            raise InvalidArgument("peer_type", f"expected a PeerType, got {type(peer_type).__name__}")
        return to_dialog_id(peer_id, peer_type)

    def _select(self) -> Select[Any]:
        peers, names = self._peers, self._names
        join = peers.outerjoin(
            names, and_(names.c.session_name == peers.c.session_name, names.c.peer_id == peers.c.peer_id)
        )
        return (
            select(
                peers.c.peer_id,
                peers.c.type,
                *(peers.c[f] for f in PEER_FIELDS),
                peers.c.updated_at,
                names.c.username,
                names.c.is_primary,
            )
            .select_from(join)
            .where(peers.c.session_name == self._scope.name)
            .order_by(peers.c.peer_id, names.c.position)
        )

    async def _one(self, condition: Any) -> Peer | None:
        stmt = self._select().where(condition)

        async def work(conn: AsyncConnection) -> builtins.list[Row[Any]]:
            return list(await conn.execute(stmt))

        found = self._assemble(await self._scope.read(work))
        return found[0] if found else None

    @staticmethod
    def _assemble(rows: Sequence[Row[Any]]) -> builtins.list[Peer]:
        """Fold the peer-join-usernames rows (one per username) back into peers."""
        result: builtins.list[Peer] = []
        current: Row[Any] | None = None
        usernames: builtins.list[str] = []
        primary: str | None = None

        def flush() -> None:
            if current is None:
                return
            bare, _ = from_dialog_id(current.peer_id)
            result.append(
                Peer(
                    id=bare,
                    type=PeerType(current.type),
                    username=primary,
                    usernames=tuple(usernames),
                    updated_at=current.updated_at,
                    **{f: getattr(current, f) for f in PEER_FIELDS},
                )
            )

        for row in rows:
            if current is None or row.peer_id != current.peer_id:
                flush()
                current, usernames, primary = row, [], None
            if row.username is not None:
                usernames.append(row.username)
                if row.is_primary:
                    primary = row.username
        flush()
        return result
