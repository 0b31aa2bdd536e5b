"""`Scope`: one account name plus the database, shared by that account's repositories.

Every row but the session itself references the session row, so a write first makes sure that row
exists (once per account object; again if the session was deleted meanwhile).
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist import dialect
from tgpersist.clock import utcnow
from tgpersist.database import Database, Work
from tgpersist.models import Models
from tgpersist.validation import check_name

T = TypeVar("T")


class Scope:
    def __init__(self, name: str, db: Database) -> None:
        self.name = check_name("name", name)
        self.db = db
        self.session_known = False

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

    async def write(self, work: Work[T]) -> T:
        """Run `work` in a write transaction that also creates the session row if it is missing."""

        async def with_session(conn: AsyncConnection) -> T:
            if not self.session_known:
                await self.ensure_session(conn)
            return await work(conn)

        try:
            result = await self.db.run(with_session, write=True)
        except IntegrityError as error:
            if not (self.session_known and dialect.is_missing_parent(error)):
                raise
            self.session_known = False  # deleted by someone else since we last looked
            result = await self.db.run(with_session, write=True)
        self.session_known = True
        return result

    async def ensure_session(self, conn: AsyncConnection) -> None:
        sessions = self.table(self.models.Session)
        now = utcnow()
        stmt = dialect.insert_ignore(sessions, self.dialect, ["name"]).values(
            name=self.name, test_mode=False, created_at=now, updated_at=now
        )
        await conn.execute(stmt)

    async def session_exists(self, conn: AsyncConnection) -> bool:
        sessions = self.table(self.models.Session)
        row = await conn.execute(select(sessions.c.name).where(sessions.c.name == self.name))
        return row.first() is not None
