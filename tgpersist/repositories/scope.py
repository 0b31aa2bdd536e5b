"""`Scope`: one account name plus the database, shared by that account's repositories.

Every row but the session itself references the session row, so a write first makes sure that row
exists (once per account object; again if the session was deleted meanwhile). While the account holds
a session lease, fenced writes run only if the session row still carries the lease's token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist.database import Database, Work
from tgpersist.encryption import AuthKeyCipher
from tgpersist.errors import ConstraintViolation, LeaseLost
from tgpersist.hot_state import HotState
from tgpersist.models import Models
from tgpersist.sql import errors, statements
from tgpersist.sql.held import ConnectionExecutor
from tgpersist.validation import check_int, check_name
from tgpersist.writes.group_commit import GroupCommit
from tgpersist.writes.kind import Call, Kind

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")


class HeldLease(Protocol):
    """What the scope reads of the session lease this account object holds (`SessionLease`)."""

    token: int

    @property
    def lost(self) -> bool: ...

    @property
    def released(self) -> bool: ...


class Scope:
    def __init__(
        self,
        name: str,
        db: Database,
        cipher: AuthKeyCipher | None = None,
        writer: GroupCommit | None = None,
    ) -> None:
        self.name = check_name("name", name)
        self.db = db
        self.cipher = AuthKeyCipher() if cipher is None else cipher  # seals/opens auth keys (shared)
        self.session_known = False
        self.lease_token: int | None = None  # fencing token of the lease this account object holds
        #: The lease this account object acquired last (set by `SessionLeases.acquire`).
        self.lease: HeldLease | None = None
        #: Coalesces small writes with other callers' (None: each runs alone, e.g. in a host's session).
        self.writer = writer
        #: Update state and channel pts kept in memory while this account object holds the lease.
        self.hot = HotState()

    def held_token(self) -> int | None:
        """The token of the lease this process holds on the session right now (not lost, not
        released), or None: only then may state be answered from memory (`HotState`)."""
        lease = self.lease
        if lease is None or lease.lost or lease.released or lease.token != self.lease_token:
            return None
        return lease.token

    def now(self) -> datetime:
        """What time it is for stored rows: the database's clock (see `tgpersist.sql.server_clock`)."""
        return self.db.clock.now()

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

    async def submit(
        self,
        kind: Kind[A, R],
        args: A,
        *,
        fence: int | None = None,
        committed: Callable[[R], None] | None = None,
    ) -> R:
        """One small write: through the group-commit writer, or alone in its own unit of work (a host's
        transaction is never coalesced with others). `committed(answer)` runs once it is durable."""
        if self.writer is not None:
            return await self.writer.submit(self, kind, args, fence=fence, committed=committed)
        call = Call(self, kind, args, fence, asyncio.get_running_loop().create_future())

        async def work(conn: AsyncConnection) -> R:
            return (await kind.apply(ConnectionExecutor(conn), [call]))[0]

        if kind.creates_rows or fence is not None:
            answer = await self.write(work, fence=fence)
        else:
            answer = await self.db.run(work, write=True)
        if committed is not None:
            committed(answer)
        return answer

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
        now = self.now()
        stmt = statements.insert_ignore(sessions, self.dialect, ["name"]).values(
            name=self.name, test_mode=False, created_at=now, updated_at=now
        )
        await conn.execute(stmt)

    async def session_exists(self, conn: AsyncConnection) -> bool:
        sessions = self.table(self.models.Session)
        row = await conn.execute(select(sessions.c.name).where(sessions.c.name == self.name))
        return row.first() is not None
