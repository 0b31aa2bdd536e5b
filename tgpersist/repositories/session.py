"""`SessionRepository`: the account's own MTProto session row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist import metrics, peer_cache
from tgpersist.domain import Session
from tgpersist.encryption import KeyLocation
from tgpersist.errors import InvalidArgument
from tgpersist.repositories.lease import SessionLeases
from tgpersist.repositories.scope import Scope
from tgpersist.sql import statements
from tgpersist.validation import read_back

#: Domain fields stored as columns of the same name.
FIELDS = (
    "dc_id",
    "api_id",
    "api_hash",
    "test_mode",
    "auth_key",
    "server_address",
    "port",
    "user_id",
    "is_bot",
    "first_name",
    "last_name",
    "username",
    "date",
    "server_salt",
    "takeout_id",
    "state",
)


class SessionRepository(SessionLeases):
    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._table = scope.table(scope.models.Session)
        self._where = KeyLocation(self._table.name, scope.name)  # what a sealed auth key is bound to

    @metrics.timed("session.save")
    async def save(self, session: Session, *, token: int | None = None) -> None:
        """Insert or replace the session (its `name` must be the account's); `created_at` is kept.

        Under a lease (held, or `token=`), `LeaseLost` if another owner took the session over.
        """
        if not isinstance(session, Session):
            raise InvalidArgument("session", f"expected a Session, got {type(session).__name__}")
        if session.name != self._scope.name:
            raise InvalidArgument("name", f"{session.name!r} is not this account's name {self._scope.name!r}")
        now = self._scope.now()
        values: dict[str, Any] = {name: getattr(session, name) for name in FIELDS}
        values.update(name=session.name, created_at=now, updated_at=now)
        values["auth_key"], values["auth_key_id"] = self._scope.cipher.seal(session.auth_key, self._where)
        stmt = statements.upsert(
            self._table, self._scope.dialect, ["name"], [*FIELDS, "auth_key_id", "updated_at"]
        )
        fence = self._scope.fence(token)

        async def work(conn: AsyncConnection) -> None:
            if fence is not None:
                await self._scope.check_fence(conn, fence)
            await conn.execute(stmt, values)

        await self._scope.db.run(work, write=True)
        self._scope.session_known = True

    @metrics.timed("session.load")
    async def load(self) -> Session | None:
        table = self._table
        names = ("name", *FIELDS, "auth_key_id", "created_at", "updated_at")
        columns = [table.c[name] for name in names]
        stmt = select(*columns).where(table.c.name == self._scope.name)

        async def work(conn: AsyncConnection) -> Row[Any] | None:
            return (await conn.execute(stmt)).first()

        row = await self._scope.read(work)
        if row is None:
            return None
        values = row._asdict()
        key_id = values.pop("auth_key_id")
        values["auth_key"] = self._scope.cipher.unseal(values["auth_key"], key_id, self._where)
        return read_back(self._scope.name, Session, **values)

    async def delete(self) -> bool:
        """Delete the session and, by cascade, every row scoped to it. True if it existed."""
        stmt = delete(self._table).where(self._table.c.name == self._scope.name)

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(stmt)).rowcount > 0

        async with peer_cache.invalidating(
            self._scope.db.peer_caches, self._scope.name, self._scope.db.host_session
        ):  # its peers go too
            try:
                deleted = await self._scope.db.run(work, write=True)
            finally:
                self._scope.hot.clear()  # its update state went with it
        self._scope.session_known = False
        return deleted
