"""Session leases: one live owner per session, with fencing tokens and a background heartbeat.

Acquire, renew and the holder check compare `lease_expires` with the database server's clock
(`statements.db_epoch`) inside one statement, so no client's clock ever decides whether a lease expired.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist import metrics
from tgpersist.database import JoinedDatabase
from tgpersist.errors import InvalidArgument, LeaseLost, SessionBusy, UnreadableRow
from tgpersist.repositories.queue import default_owner
from tgpersist.repositories.scope import Scope
from tgpersist.sql import statements
from tgpersist.validation import MAX_SECONDS, check_name, check_seconds

log = logging.getLogger(__name__)

#: Seconds a lease lasts without renewal unless the caller says otherwise.
DEFAULT_TTL = 30.0
#: The heartbeat renews this many times per TTL, so two renewals may fail before the lease lapses.
RENEWALS_PER_TTL = 3
#: `wait=True` polls at most this far apart (sooner when the database says the lease ends sooner).
MAX_POLL = 1.0
#: Called with the lease when its heartbeat finds it taken over; may be a coroutine function.
OnLost = Callable[["SessionLease"], Any]

# Heartbeat tasks, kept here so that a running one is never garbage-collected mid-sleep.
_heartbeats: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class LeaseInfo:
    """Who holds a session's lease: owner name, fencing token, and expiry by the database clock (UTC)."""

    owner: str
    token: int
    expires_at: datetime


def _as_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def stored_expiry(session: str, epoch: Any) -> datetime:
    """A `lease_expires` read from the database; `UnreadableRow` if it is no time (say, written by
    hand or an older version with a huge ttl). `acquire` takes such a lease over (see `_Statements`)."""
    try:
        if not isinstance(epoch, int | float) or not math.isfinite(epoch):
            raise ValueError("not a finite number")
        return _as_datetime(epoch)
    except (ValueError, OverflowError, OSError) as error:
        raise UnreadableRow(session, "lease_expires", f"not a time ({error})") from None


def _seconds(field: str, value: Any, *, zero: bool = False) -> float:
    return check_seconds(field, value, zero=zero)


class _Statements:
    """The lease SQL for one session row; every expiry comparison uses the database clock."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.table: Table = scope.table(scope.models.Session)
        self.now: ColumnElement[float] = statements.db_epoch(scope.dialect)

    def _row(self) -> ColumnElement[bool]:
        return self.table.c.name == self.scope.name

    def acquire(self, owner: str, ttl: float) -> Any:
        """Take the lease if nobody holds it, it expired or its expiry is unreadable (further ahead than
        any ttl can reach: written by hand or an older version); bump the token. Only lease columns change."""
        t = self.table
        unreadable = t.c.lease_expires > self.now + MAX_SECONDS  # also NaN and Infinity (PostgreSQL)
        free = or_(
            t.c.lease_owner.is_(None), t.c.lease_expires.is_(None), t.c.lease_expires <= self.now, unreadable
        )
        return (
            update(t)
            .where(self._row(), free)
            .values(lease_owner=owner, lease_token=t.c.lease_token + 1, lease_expires=self.now + ttl)
            .returning(t.c.lease_token, t.c.lease_expires)
        )

    def current(self) -> Any:
        """The lease columns and the seconds left on them, as the database counts them."""
        t = self.table
        left = (t.c.lease_expires - self.now).label("left")
        return select(t.c.lease_owner, t.c.lease_token, t.c.lease_expires, left).where(self._row())

    def renew(self, token: int, ttl: float) -> Any:
        t = self.table
        return (
            update(t)
            .where(self._row(), t.c.lease_token == token, t.c.lease_owner.is_not(None))
            .values(lease_expires=self.now + ttl)
            .returning(t.c.lease_expires)
        )

    def release(self, token: int) -> Any:
        t = self.table
        return (
            update(t)
            .where(self._row(), t.c.lease_token == token, t.c.lease_owner.is_not(None))
            .values(lease_owner=None, lease_expires=None)
            .returning(t.c.lease_token)
        )


@dataclass(frozen=True)
class _Busy:
    owner: str
    expires: float
    left: float


class SessionLease:
    """A held lease on one session: its owner, fencing `token`, expiry and background heartbeat.

    While held, the account's writes to its session, DC keys and update state are fenced by `token`.
    `lost` turns True when a renewal finds another owner took over; `release()` gives the lease up.
    """

    def __init__(
        self,
        scope: Scope,
        owner: str,
        token: int,
        expires: float,
        ttl: float,
        heartbeat: float,
        on_lost: OnLost | None,
    ) -> None:
        self.name = scope.name
        self.owner = owner
        self.token = token
        self.ttl = ttl
        self.heartbeat = heartbeat
        self.expires_at = _as_datetime(expires)
        self._scope = scope
        self._sql = _Statements(scope)
        self._on_lost = on_lost
        self._lost = False
        self._released = False
        self._task: asyncio.Task[None] | None = None

    @property
    def lost(self) -> bool:
        """True once another owner has taken the session over (this lease's writes are refused)."""
        return self._lost

    @property
    def released(self) -> bool:
        return self._released

    def __repr__(self) -> str:
        state = "lost" if self._lost else "released" if self._released else "held"
        return f"SessionLease({self.name!r}, owner={self.owner!r}, token={self.token}, {state})"

    async def renew(self) -> datetime:
        """Extend the lease by its TTL from the database's now; `LeaseLost` if it is no longer ours."""
        if self._released or self._lost:
            raise LeaseLost(self.name, self.token)
        stmt = self._sql.renew(self.token, self.ttl)

        async def work(conn: AsyncConnection) -> float | None:
            return (await conn.execute(stmt)).scalar_one_or_none()

        expires = await self._scope.db.run(work, write=True)
        if expires is None:
            self._lost = True
            metrics.add("tgpersist.lease.lost", session=self.name)
            raise LeaseLost(self.name, self.token)
        self.expires_at = _as_datetime(expires)
        return self.expires_at

    async def release(self) -> bool:
        """Stop renewing and free the session at once. True if this lease still held it.

        After a lost lease, the account's fenced writes stay refused until it acquires a lease again:
        whoever took over owns the session's state now.
        """
        await self._stop_heartbeat()
        if self._released:
            return False
        self._released = True
        if self._lost:
            return False
        stmt = self._sql.release(self.token)

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(stmt)).first() is not None

        freed = await self._scope.db.run(work, write=True)
        metrics.add("tgpersist.lease.released" if freed else "tgpersist.lease.lost", session=self.name)
        if not freed:
            self._lost = True
        elif self._scope.lease_token == self.token:
            self._scope.lease_token = None
        return freed

    async def __aenter__(self) -> SessionLease:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.release()

    # -- heartbeat ---------------------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        if self.heartbeat <= 0:
            return
        task = asyncio.get_running_loop().create_task(
            self._beat(), name=f"tgpersist lease heartbeat {self.name!r}"
        )
        _heartbeats.add(task)
        task.add_done_callback(_heartbeats.discard)
        self._task = task

    async def _stop_heartbeat(self) -> None:
        task, self._task = self._task, None
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def _beat(self) -> None:
        # Renewals start `heartbeat` apart, however long each one waited for the database.
        loop = asyncio.get_running_loop()
        delay = self.heartbeat
        while True:
            await asyncio.sleep(delay)
            started = loop.time()
            try:
                await self.renew()
            except LeaseLost:
                log.warning("lease on session %r (token %d) was taken over", self.name, self.token)
                await self._notify_lost()
                return
            except Exception as error:  # a transient database error: try again sooner
                log.warning("renewing the lease on session %r failed: %s", self.name, type(error).__name__)
                delay = min(self.heartbeat, 1.0) / 2
            else:
                delay = max(0.0, self.heartbeat - (loop.time() - started))

    async def _notify_lost(self) -> None:
        if self._on_lost is None:
            return
        try:
            result = self._on_lost(self)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("the on_lost callback of the lease on session %r failed", self.name)


class SessionLeases:
    """`acquire`, `lease` and `holder` for `SessionRepository`: one live owner per session."""

    _scope: Scope
    _held: SessionLease | None = None

    async def acquire(
        self,
        *,
        owner: str | None = None,
        ttl: float = DEFAULT_TTL,
        wait: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 (the fixed API; it bounds wait=True's polling)
        heartbeat: float | None = None,
        on_lost: OnLost | None = None,
    ) -> SessionLease:
        """Become the one live owner of this session, or raise `SessionBusy` naming the current one.

        `owner` defaults to host:pid. `wait=True` polls until the lease is free (or `timeout` seconds
        pass, then `SessionBusy`). The lease renews itself every `heartbeat` seconds (default `ttl/3`;
        0 turns that off and the caller renews); `on_lost(lease)` is called if it finds it taken over.
        """
        owner = check_name("owner", default_owner() if owner is None else owner)
        ttl = _seconds("ttl", ttl)
        beat = ttl / RENEWALS_PER_TTL if heartbeat is None else _seconds("heartbeat", heartbeat, zero=True)
        if beat >= ttl:
            raise InvalidArgument("heartbeat", "must be shorter than ttl, or the lease lapses unrenewed")
        limit = None if timeout is None else _seconds("timeout", timeout, zero=True)
        if on_lost is not None and not callable(on_lost):
            raise InvalidArgument("on_lost", "expected a callable")
        if isinstance(self._scope.db, JoinedDatabase):
            raise InvalidArgument("session", "a lease needs the store's own engine, not a host's transaction")

        token, expires = await self._take(owner, ttl, wait, limit)
        lease = SessionLease(self._scope, owner, token, expires, ttl, beat, on_lost)
        if self._held is not None:
            await self._held._stop_heartbeat()  # an earlier lease of ours, lost meanwhile
        self._held = lease
        self._scope.lease_token = token
        self._scope.lease = lease  # read through `Scope.held_token` (state kept in memory under it)
        lease._start_heartbeat()
        metrics.add("tgpersist.lease.acquired", session=self._scope.name)
        return lease

    @asynccontextmanager
    async def lease(
        self,
        *,
        owner: str | None = None,
        ttl: float = DEFAULT_TTL,
        wait: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 (the fixed API; it bounds wait=True's polling)
        heartbeat: float | None = None,
        on_lost: OnLost | None = None,
    ) -> AsyncIterator[SessionLease]:
        """`acquire` on entry, `release` on exit (whatever happened inside)."""
        held = await self.acquire(
            owner=owner, ttl=ttl, wait=wait, timeout=timeout, heartbeat=heartbeat, on_lost=on_lost
        )
        try:
            yield held
        finally:
            await held.release()

    async def holder(self) -> LeaseInfo | None:
        """Who holds the lease now (by the database clock), or None if it is free."""
        t = self._scope.table(self._scope.models.Session)
        now = statements.db_epoch(self._scope.dialect)
        stmt = select(t.c.lease_owner, t.c.lease_token, t.c.lease_expires).where(
            t.c.name == self._scope.name, t.c.lease_owner.is_not(None), t.c.lease_expires > now
        )

        async def work(conn: AsyncConnection) -> LeaseInfo | None:
            row = (await conn.execute(stmt)).first()
            if row is None:
                return None
            return LeaseInfo(
                row.lease_owner, row.lease_token, stored_expiry(self._scope.name, row.lease_expires)
            )

        return await self._scope.read(work)

    async def release_held(self) -> None:
        """Release the lease this account object holds, if any (`Store.close` calls this)."""
        held, self._held = self._held, None
        if held is not None:
            await held.release()

    # -- acquisition ------------------------------------------------------------------------------
    async def _take(self, owner: str, ttl: float, wait: bool, limit: float | None) -> tuple[int, float]:
        sql = _Statements(self._scope)
        acquire, current = sql.acquire(owner, ttl), sql.current()

        async def attempt(conn: AsyncConnection) -> tuple[int, float] | _Busy | None:
            await self._scope.ensure_session(conn)
            row = (await conn.execute(acquire)).first()
            if row is not None:
                return int(row.lease_token), float(row.lease_expires)
            held = (await conn.execute(current)).first()
            if held is None or held.lease_owner is None or held.left is None or held.left <= 0:
                return None  # freed or deleted since the UPDATE looked (PostgreSQL): try again at once
            return _Busy(held.lease_owner, float(held.lease_expires), float(held.left))

        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        polls = races = 0
        while True:
            result = await self._scope.db.run(attempt, write=True)
            self._scope.session_known = True
            if isinstance(result, tuple):
                return result
            if result is None:
                races += 1
                await asyncio.sleep(0 if races < 5 else 0.01)
                continue
            remaining = None if deadline is None else deadline - loop.time()
            if not wait or (remaining is not None and remaining <= 0):
                raise SessionBusy(self._scope.name, result.owner, _as_datetime(result.expires))
            # Back off, but wake up when the database says the lease ends, and at the deadline.
            delay = min(MAX_POLL, 0.05 * 2**polls) * random.uniform(0.75, 1.0)
            delay = min(delay, result.left + 0.005)
            if remaining is not None:
                delay = min(delay, remaining)
            polls += 1
            await asyncio.sleep(max(delay, 0.005))
