"""`Scope`: one account name plus the database, shared by that account's repositories.

Every row but the session itself references the session row, so a write first makes sure that row
exists (once per account object; again if the session was deleted meanwhile). While the account holds
a session lease, fenced writes run only if the session row still carries the lease's token.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist.clock import utcnow
from tgpersist.database import Database, Work
from tgpersist.encryption import AuthKeyCipher
from tgpersist.errors import ConstraintViolation, LeaseLost
from tgpersist.models import Models
from tgpersist.sql import errors, statements
from tgpersist.validation import check_int, check_name

T = TypeVar("T")


class Scope:
    def __init__(self, name: str, db: Database, cipher: AuthKeyCipher | None = None) -> None:
        self.name = check_name("name", name)
        self.db = db
        self.cipher = AuthKeyCipher() if cipher is None else cipher  # seals/opens auth keys (shared)
        self.session_known = False
        self.lease_token: int | None = None  # fencing token of the lease this account object holds

    @property
    def models(self) -> Models:
        return self.db.models

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def table(self, model: Any) -> Table:
        return self.db.models.table(model)

    async def read(self, work: Work[T]) -> T:
        return await self.db.run(work, write=False)

    async def write(self, work: Work[T], *, fence: int | None = None) -> T:
        """Run `work` in a write transaction that also creates the session row if it is missing.

        With `fence` (a lease token), `work` runs only while the session row carries that token.
        """

        async def with_session(conn: AsyncConnection) -> T:
            if fence is not None:
                await self.check_fence(conn, fence)
            elif not self.session_known:
                await self.ensure_session(conn)
            return await work(conn)

        try:
            result = await self.db.run(with_session, write=True)
        except (IntegrityError, ConstraintViolation) as error:
            if fence is not None or not errors.is_missing_parent(error):
                raise
            # Deleted by someone else since we last looked (or between our insert-if-absent and the
            # write, in another transaction): create it again and re-run the whole unit once.
            self.session_known = False
            result = await self.db.run(with_session, write=True)
        self.session_known = True
        return result

    def fence(self, token: int | None) -> int | None:
        """The lease token a fenced write must match: `token` if given, else the held lease's (or none)."""
        return self.lease_token if token is None else check_int("token", token, 0)

    async def check_fence(self, conn: AsyncConnection, token: int) -> None:
        """Raise `LeaseLost` unless the session row's lease token is `token`.

        The row stays locked until the transaction ends (PostgreSQL `FOR UPDATE`; a SQLite write
        transaction holds the database lock), so a takeover cannot slip in before the write commits.
        """
        sessions = self.table(self.models.Session)
        stmt = select(sessions.c.lease_token).where(sessions.c.name == self.name).with_for_update()
        if (await conn.execute(stmt)).scalar_one_or_none() != token:
            raise LeaseLost(self.name, token)

    async def ensure_session(self, conn: AsyncConnection) -> None:
        sessions = self.table(self.models.Session)
        now = utcnow()
        stmt = statements.insert_ignore(sessions, self.dialect, ["name"]).values(
            name=self.name, test_mode=False, created_at=now, updated_at=now
        )
        await conn.execute(stmt)

    async def session_exists(self, conn: AsyncConnection) -> bool:
        sessions = self.table(self.models.Session)
        row = await conn.execute(select(sessions.c.name).where(sessions.c.name == self.name))
        return row.first() is not None
