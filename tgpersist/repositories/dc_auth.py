"""`DcAuthRepository`: permanent auth keys and addresses for the other DCs of one account."""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist.domain import DcAuth
from tgpersist.encryption import KeyLocation
from tgpersist.errors import InvalidArgument
from tgpersist.repositories.scope import Scope
from tgpersist.sql import statements
from tgpersist.validation import INT32_MAX, check_bool, check_int, read_back

FIELDS = ("dc_id", "media_only", "auth_key", "server_salt", "ipv4", "ipv6", "port", "test_mode")


class DcAuthRepository:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._table = scope.table(scope.models.DcAuth)

    async def save(self, entry: DcAuth, *, token: int | None = None) -> None:
        """Insert or replace one DC's entry; under a lease, `LeaseLost` if the session was taken over."""
        if not isinstance(entry, DcAuth):
            raise InvalidArgument("entry", f"expected a DcAuth, got {type(entry).__name__}")
        values: dict[str, Any] = {name: getattr(entry, name) for name in FIELDS}
        values.update(session_name=self._scope.name, updated_at=self._scope.now())
        where = self._where(entry.dc_id, entry.media_only)
        values["auth_key"], values["auth_key_id"] = self._scope.cipher.seal(entry.auth_key, where)
        keys = ["session_name", "dc_id", "media_only"]
        stmt = statements.upsert(
            self._table,
            self._scope.dialect,
            keys,
            [f for f in FIELDS if f not in keys] + ["auth_key_id", "updated_at"],
        )

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(stmt, values)

        await self._scope.write(work, fence=self._scope.fence(token))

    async def load(self, dc_id: int, *, media_only: bool = False) -> DcAuth | None:
        check_int("dc_id", dc_id, -INT32_MAX - 1, INT32_MAX)  # what the column can hold
        check_bool("media_only", media_only)
        t = self._table
        stmt = self._select().where(t.c.dc_id == dc_id, t.c.media_only == media_only)
        rows = await self._scope.read(lambda conn: self._fetch(conn, stmt))
        return rows[0] if rows else None

    async def list(self) -> list[DcAuth]:
        """Every entry of the account, by DC id (main before media-only)."""
        stmt = self._select().order_by(self._table.c.dc_id, self._table.c.media_only)
        return await self._scope.read(lambda conn: self._fetch(conn, stmt))

    async def delete(self, dc_id: int, *, media_only: bool = False) -> bool:
        check_int("dc_id", dc_id, -INT32_MAX - 1, INT32_MAX)  # what the column can hold
        check_bool("media_only", media_only)
        t = self._table
        stmt = delete(t).where(
            t.c.session_name == self._scope.name, t.c.dc_id == dc_id, t.c.media_only == media_only
        )

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(stmt)).rowcount > 0

        return await self._scope.db.run(work, write=True)

    def _select(self) -> Any:
        t = self._table
        return select(*(t.c[name] for name in (*FIELDS, "auth_key_id", "updated_at"))).where(
            t.c.session_name == self._scope.name
        )

    async def _fetch(self, conn: AsyncConnection, stmt: Any) -> builtins.list[DcAuth]:
        return [self._to_domain(row._asdict()) for row in await conn.execute(stmt)]

    def _where(self, dc_id: int, media_only: bool) -> KeyLocation:
        """What a sealed auth key of this row is bound to: session, DC id and media flag."""
        return KeyLocation(self._table.name, self._scope.name, dc_id=dc_id, media_only=media_only)

    def _to_domain(self, values: dict[str, Any]) -> DcAuth:
        where = self._where(values["dc_id"], values["media_only"])
        values["auth_key"] = self._scope.cipher.unseal(values["auth_key"], values.pop("auth_key_id"), where)
        return read_back(self._scope.name, DcAuth, **values)
