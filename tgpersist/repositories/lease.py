"""Session leases: one live owner per session, with fencing tokens and a background heartbeat.

Acquire, renew and the holder check compare `lease_expires` with the database server's clock
(`statements.db_epoch`) inside one statement, so no client's clock ever decides whether a lease expired.
The holder also keeps a local deadline by its own monotonic clock (`lease_deadline`): past it the lease
counts as lost whether or not the database can be reached. Every database call of acquire, renew and
release is bounded by what is left of the lease.

Taking a lease (and the polling of `wait=True`) lives in `lease_acquire`, the renewing heartbeat and
the `on_lost` runner in `lease_heartbeat`; this module holds the lease and the repository's API.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist import metrics
from tgpersist.database import JoinedDatabase
from tgpersist.errors import DatabaseUnavailable, InvalidArgument, LeaseLost
from tgpersist.repositories.lease_acquire import MAX_POLL as MAX_POLL  # re-exported
from tgpersist.repositories.lease_acquire import take_lease
from tgpersist.repositories.lease_deadline import LeaseDeadline
from tgpersist.repositories.lease_heartbeat import Heartbeat, call_on_lost
from tgpersist.repositories.lease_sql import LeaseInfo as LeaseInfo  # re-exported: its home for callers
from tgpersist.repositories.lease_sql import LeaseStatements, as_datetime
from tgpersist.repositories.lease_sql import stored_expiry as stored_expiry  # re-exported
from tgpersist.repositories.queue import default_owner
from tgpersist.repositories.scope import Scope
from tgpersist.sql import statements
from tgpersist.validation import check_name, check_seconds

#: Lease events (acquired, renewed late, lost, released) with `extra` session, owner and token.
log = logging.getLogger("tgpersist.lease")

#: Seconds a lease lasts without renewal unless the caller says otherwise.
DEFAULT_TTL = 30.0
#: The shortest lease: every database call of an acquire must fit in `ttl - margin`, so a shorter
#: one would run out before its own acquire could be answered.
MIN_TTL = 0.1
#: The heartbeat renews this many times per TTL, so two renewals may fail before the lease lapses.
RENEWALS_PER_TTL = 3
#: Called with the lease once, when it is lost (taken over or run out); may be a coroutine function.
OnLost = Callable[["SessionLease"], Any]


def _seconds(field: str, value: Any, *, zero: bool = False) -> float:
    return check_seconds(field, value, zero=zero)


class SessionLease:
    """A held lease on one session: its owner, fencing `token`, expiry and background heartbeat.

    While held, the account's writes to its session, DC keys and update state are fenced by `token`.
    `lost` turns True when a renewal finds another owner took over, or when the holder's own clock
    says the lease ran out (see `lease_deadline`); `release()` gives the lease up.
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
        sent: float,
    ) -> None:
        self.name = scope.name
        self.owner = owner
        self.token = token
        self.ttl = ttl
        self.heartbeat = heartbeat
        self.expires_at = as_datetime(expires)
        self._scope = scope
        self._sql = LeaseStatements(scope)
        self._on_lost = on_lost
        self._lost = False
        self._released = False
        self._deadline = LeaseDeadline(ttl, sent, self._ran_out)
        self._heartbeat = Heartbeat(self, self._extra)

    @property
    def lost(self) -> bool:
        """True once the lease is no longer ours: taken over, or run out by this process's own clock.

        Read from the clock each time, so it is right the instant the local deadline passed (also
        first thing after the process was frozen). A lost lease stays lost: acquire a new one.
        """
        if not self._lost and not self._released and self._deadline.passed:
            self._ran_out()
        return self._lost

    @property
    def released(self) -> bool:
        return self._released

    @property
    def margin(self) -> float:
        """Seconds before the database's expiry at which this holder counts its lease as lost."""
        return self._deadline.margin

    def __repr__(self) -> str:
        state = "lost" if self._lost else "released" if self._released else "held"
        return f"SessionLease({self.name!r}, owner={self.owner!r}, token={self.token}, {state})"

    async def renew(self) -> datetime:
        """Extend the lease by its TTL from the database's now; `LeaseLost` if it is no longer ours.

        The call is bounded by what is left of the lease: `DatabaseUnavailable` if the database does
        not answer in time (the lease then runs out at its local deadline unless a later renewal works).
        """
        if self._released or self.lost:
            raise LeaseLost(self.name, self.token)
        stmt = self._sql.renew(self.token, self.ttl)

        async def work(conn: AsyncConnection) -> float | None:
            return (await conn.execute(stmt)).scalar_one_or_none()

        sent, left = LeaseDeadline.now(), self._deadline.left()
        expires = await self._bounded(work, left, "renewing")
        if expires is None:
            self._lose("taken over by another owner")
        if self._lost or not self._deadline.extend(sent):
            self._ran_out()
            raise LeaseLost(self.name, self.token)
        self.expires_at = as_datetime(expires)
        if left < self.ttl / RENEWALS_PER_TTL:
            log.warning(
                "lease on session %r renewed late (%.1fs were left of it)", self.name, left, extra=self._extra
            )
        return self.expires_at

    async def release(self) -> bool:
        """Stop renewing and free the session at once. True if this lease still held it.

        After a lost lease, the account's fenced writes stay refused until it acquires a lease again:
        whoever took over owns the session's state now. If the database does not answer within the
        connect timeout (or what is left of the lease), the release is given up (WARNING) and the
        lease simply expires.
        """
        await self._heartbeat.stop()
        if self._released:
            return False
        lost = self.lost
        self._released = True
        self._deadline.cancel()
        if lost:
            return False
        stmt = self._sql.release(self.token)

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(stmt)).first() is not None

        try:
            # Best effort: at most the connect timeout (a lease not released just expires).
            limit = min(self._deadline.left(), self._scope.db.connect_timeout or math.inf)
            freed = bool(await self._bounded(work, limit, "releasing"))
        except DatabaseUnavailable:
            log.warning(
                "lease on session %r not released (database unavailable); it expires at %s",
                self.name,
                self.expires_at.isoformat(timespec="seconds"),
                extra=self._extra,
            )
            return False
        metrics.add("tgpersist.lease.released" if freed else "tgpersist.lease.lost", session=self.name)
        if not freed:
            self._lost = True
        else:
            if self._scope.lease_token == self.token:
                self._scope.lease_token = None
            log.info("lease on session %r released", self.name, extra=self._extra)
        return freed

    async def __aenter__(self) -> SessionLease:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.release()

    # -- losing it ---------------------------------------------------------------------------------
    @property
    def _extra(self) -> dict[str, Any]:
        return {"session": self.name, "owner": self.owner, "token": self.token}

    async def _bounded(self, work: Callable[[AsyncConnection], Any], limit: float, doing: str) -> Any:
        """`work` as one write, given at most `limit` seconds; a hang is logged naming session and host."""
        db = self._scope.db
        try:
            return await db.run(work, write=True, timeout=max(limit, 0.001))
        except DatabaseUnavailable as error:
            log.warning(
                "%s the lease on session %r failed: database at %s: %s",
                doing,
                self.name,
                db.where,
                error.problem,
                extra=self._extra,
            )
            raise

    def _ran_out(self) -> None:
        self._lose(f"no renewal succeeded within {self.ttl - self.margin:g}s (ttl {self.ttl:g}s - margin)")

    def _lose(self, why: str) -> None:
        """Count the lease as lost (once): stop trusting it, log, and call `on_lost`."""
        if self._lost or self._released:
            return
        self._lost = True
        self._deadline.cancel()
        log.warning("lease on session %r lost: %s", self.name, why, extra=self._extra)
        metrics.add("tgpersist.lease.lost", session=self.name)
        if self._on_lost is not None:
            call_on_lost(self._on_lost, self)


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
        if ttl < MIN_TTL:
            raise InvalidArgument("ttl", f"must be at least {MIN_TTL:g} seconds")
        beat = ttl / RENEWALS_PER_TTL if heartbeat is None else _seconds("heartbeat", heartbeat, zero=True)
        if beat >= ttl:
            raise InvalidArgument("heartbeat", "must be shorter than ttl, or the lease lapses unrenewed")
        limit = None if timeout is None else _seconds("timeout", timeout, zero=True)
        if on_lost is not None and not callable(on_lost):
            raise InvalidArgument("on_lost", "expected a callable")
        if isinstance(self._scope.db, JoinedDatabase):
            raise InvalidArgument("session", "a lease needs the store's own engine, not a host's transaction")

        token, expires, sent = await take_lease(self._scope, owner, ttl, wait, limit)
        lease = SessionLease(self._scope, owner, token, expires, ttl, beat, on_lost, sent)
        log.info("lease on session %r acquired (ttl %gs)", lease.name, ttl, extra=lease._extra)
        if self._held is not None:
            await self._held._heartbeat.stop()  # an earlier lease of ours, lost meanwhile
        self._held = lease
        self._scope.lease_token = token
        self._scope.lease = lease  # read through `Scope.held_token` (state kept in memory under it)
        lease._heartbeat.start()
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
