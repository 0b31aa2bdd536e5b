"""Taking a session's lease: one attempt per transaction, and the polling of `acquire(wait=True)`.

Kept apart from the held lease (`lease.py`): each attempt is bounded by the local lifetime of the
lease it would take, and a busy lease is polled with a jittered back-off that wakes when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import random

from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist.errors import DatabaseUnavailable, SessionBusy
from tgpersist.repositories.lease_deadline import LeaseDeadline, margin_for
from tgpersist.repositories.lease_sql import Busy, LeaseStatements, as_datetime
from tgpersist.repositories.scope import Scope

log = logging.getLogger("tgpersist.lease")

#: `wait=True` polls at most this far apart (sooner when the database says the lease ends sooner).
MAX_POLL = 1.0


async def take_lease(
    scope: Scope, owner: str, ttl: float, wait: bool, limit: float | None
) -> tuple[int, float, float]:
    """(token, database expiry, monotonic time the winning attempt was sent); each attempt is
    bounded by the local lifetime of the lease it would take (`DatabaseUnavailable` past that)."""
    sql = LeaseStatements(scope)
    acquire, current = sql.acquire(owner, ttl), sql.current()

    async def attempt(conn: AsyncConnection) -> tuple[int, float] | Busy | None:
        await scope.ensure_session(conn)
        row = (await conn.execute(acquire)).first()
        if row is not None:
            return int(row.lease_token), float(row.lease_expires)
        held = (await conn.execute(current)).first()
        if held is None or held.lease_owner is None or held.left is None or held.left <= 0:
            return None  # freed or deleted since the UPDATE looked (PostgreSQL): try again at once
        return Busy(held.lease_owner, float(held.lease_expires), float(held.left))

    loop = asyncio.get_running_loop()
    deadline = None if limit is None else loop.time() + limit
    polls = races = 0
    db = scope.db
    while True:
        sent = LeaseDeadline.now()
        try:
            result = await db.run(attempt, write=True, timeout=ttl - margin_for(ttl))
        except DatabaseUnavailable as error:
            log.warning(
                "acquiring the lease on session %r failed: database at %s: %s",
                scope.name,
                db.where,
                error.problem,
                extra={"session": scope.name, "owner": owner, "token": None},
            )
            raise
        scope.session_known = True
        if isinstance(result, tuple):
            return (*result, sent)
        if result is None:
            races += 1
            await asyncio.sleep(0 if races < 5 else 0.01)
            continue
        remaining = None if deadline is None else deadline - loop.time()
        if not wait or (remaining is not None and remaining <= 0):
            raise SessionBusy(scope.name, result.owner, as_datetime(result.expires))
        # Back off, but wake up when the database says the lease ends, and at the deadline.
        delay = min(MAX_POLL, 0.05 * 2**polls) * random.uniform(0.75, 1.0)
        delay = min(delay, result.left + 0.005)
        if remaining is not None:
            delay = min(delay, remaining)
        polls += 1
        await asyncio.sleep(max(delay, 0.005))
