"""Looking at and repairing one account's durable queue: counts by state, requeue, purge; and the
dead-letter report (a WARNING on `tgpersist.queue` and a metric) that the claim and fail paths call.

These run beside the worker paths of `DurableQueue` (enqueue/claim/ack/fail), never inside them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist import metrics
from tgpersist.domain import UpdateStatus
from tgpersist.domain.stats import QueueCounts
from tgpersist.repositories.scope import Scope
from tgpersist.validation import check_name

log = logging.getLogger("tgpersist.queue")

#: Ids per statement in `requeue_many` (well under SQLite's and asyncpg's parameter limits).
CHUNK = 1000


def report_dead_letter(session: str, update_id: str, attempts: int, error: str | None) -> None:
    """An update just became a dead letter: log it (without its payload) and count it."""
    log.warning(
        "update %r of session %r is a dead letter after %d attempts",
        update_id,
        session,
        attempts,
        extra={"session": session, "id": update_id, "attempts": attempts, "last_error": error},
    )
    metrics.add("tgpersist.queue.dead_letters", session=session)


def counts_select(queue: Table, now: datetime) -> Any:
    """Per session name: how many updates are available, in flight, waiting and dead, and when the
    oldest pending one was enqueued — one pass over the queue table, grouped by session."""
    pending = queue.c.status == UpdateStatus.PENDING.value
    leased = and_(pending, queue.c.lease_expires_at.is_not(None), queue.c.lease_expires_at > now)
    unleased = or_(queue.c.lease_expires_at.is_(None), queue.c.lease_expires_at <= now)
    available = and_(pending, queue.c.available_at <= now, unleased)
    waiting = and_(pending, queue.c.available_at > now, unleased)

    def number(condition: Any, label: str) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0).label(label)

    return select(
        queue.c.session_name,
        number(available, "available"),
        number(leased, "in_flight"),
        number(waiting, "retry_wait"),
        number(queue.c.status == UpdateStatus.DEAD.value, "dead"),
        func.min(case((pending, queue.c.created_at), else_=None)).label("oldest"),
    ).group_by(queue.c.session_name)


def to_counts(row: Any, now: datetime) -> QueueCounts:
    """A row of `counts_select` (or of an outer join to it: NULLs count as nothing) as `QueueCounts`."""
    oldest = row.oldest
    return QueueCounts(
        available=int(row.available or 0),
        in_flight=int(row.in_flight or 0),
        retry_wait=int(row.retry_wait or 0),
        dead=int(row.dead or 0),
        oldest_age=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
    )


class QueueAdmin:
    """Counts, requeue and purge for `DurableQueue` (which provides `_scope` and `_queue`)."""

    _scope: Scope
    _queue: Table

    async def counts(self) -> QueueCounts:
        """This account's queue by state (see `QueueCounts`); `pending` and `dead` as before."""
        now = self._scope.now()
        stmt = counts_select(self._queue, now).where(self._queue.c.session_name == self._scope.name)

        async def work(conn: AsyncConnection) -> QueueCounts:
            row = (await conn.execute(stmt)).first()
            return QueueCounts() if row is None else to_counts(row, now)

        return await self._scope.read(work)

    async def requeue_many(self, update_ids: Iterable[str]) -> list[str]:
        """`requeue` several updates in one transaction; returns the ids that were requeued (those not
        queued, or held by a worker under a live lease, are left alone)."""
        ids = sorted({check_name("update_id", update_id) for update_id in update_ids})
        queue = self._queue

        async def work(conn: AsyncConnection) -> list[str]:
            now = self._scope.now()
            done: list[str] = []
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                stmt = self._requeue(now, queue.c.id.in_(chunk)).returning(queue.c.id)
                done += (await conn.execute(stmt)).scalars()
            return sorted(done)

        return await self._scope.db.run(work, write=True) if ids else []

    async def requeue_dead(self) -> int:
        """Make every dead letter of this account available now with a fresh attempt count; how many."""

        async def work(conn: AsyncConnection) -> int:
            stmt = self._requeue(self._scope.now(), self._queue.c.status == UpdateStatus.DEAD.value)
            return (await conn.execute(stmt)).rowcount

        return await self._scope.db.run(work, write=True)

    async def purge(self, *, dead_only: bool = True) -> int:
        """Delete this account's dead letters (or, with `dead_only=False`, every queued update, in
        flight or not) in one transaction; returns how many."""
        queue = self._queue
        stmt = delete(queue).where(queue.c.session_name == self._scope.name)
        if dead_only:
            stmt = stmt.where(queue.c.status == UpdateStatus.DEAD.value)

        async def work(conn: AsyncConnection) -> int:
            return (await conn.execute(stmt)).rowcount

        return await self._scope.db.run(work, write=True)

    def _requeue(self, now: datetime, which: Any) -> Any:
        """UPDATE that makes `which` rows available now, skipping pending rows under a live lease."""
        queue = self._queue
        not_leased = (
            (queue.c.status == UpdateStatus.DEAD.value)
            | queue.c.lease_expires_at.is_(None)
            | (queue.c.lease_expires_at <= now)
        )
        return (
            update(queue)
            .where(queue.c.session_name == self._scope.name, which, not_leased)
            .values(
                status=UpdateStatus.PENDING.value,
                attempts=0,
                available_at=now,
                updated_at=now,
                lease_owner=None,
                lease_expires_at=None,
            )
        )
