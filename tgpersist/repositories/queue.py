"""`DurableQueue`: updates received but not yet handled, delivered at least once to leasing workers.

The lease story, for a pool of workers (coroutines, processes or hosts) on one account:

- `claim(limit, lease=..., owner=...)` leases up to `limit` of the oldest available updates to `owner`
  (default `host:pid`; give each concurrent worker its own name). Until `lease` seconds pass (default
  `QueuePolicy.lease`), no other claim hands them out. PostgreSQL claims with `FOR UPDATE SKIP LOCKED`;
  SQLite with one `UPDATE ... RETURNING` under `BEGIN IMMEDIATE`.
- `ack(id)` (or `ack_many`) deletes a handled update. `fail(id, error, owner=...)` keeps the error and
  makes it available again after an exponential backoff with jitter; `extend_lease(id, owner=...)` keeps
  a long handler's lease alive. Given an `owner`, both act only while it still holds the update, so a
  worker whose lease ran out cannot take an update back from the worker that claimed it since.
- A worker that dies simply stops acking: its lease expires and the update is handed out again. Each
  claim counts an attempt; after `max_attempts` (failed, or leased and never settled) it is a dead letter,
  listed by `dead_letters()` and put back by `requeue(id)` (see `queue_admin` for counts and purge).

Lease times come from the worker's clock: keep hosts' clocks in sync (NTP) and leases far longer than any
skew. Delivery is at least once: handlers must tolerate an update whose ack was lost to a crash.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import case

from tgpersist import metrics
from tgpersist.domain import DurableUpdate, UpdateStatus
from tgpersist.domain.updates import MAX_ERROR
from tgpersist.errors import InvalidArgument
from tgpersist.repositories.queue_admin import QueueAdmin, report_dead_letter
from tgpersist.repositories.scope import Scope
from tgpersist.repositories.waiting import QueueWaiter
from tgpersist.sql import statements
from tgpersist.validation import INT32_MAX, check_duration, check_int, check_name, check_seconds, error_text
from tgpersist.writes import queue as writes


@dataclass(frozen=True)
class QueuePolicy:
    """How the durable queue leases and retries."""

    lease: float = 60.0
    max_attempts: int = 10
    base_delay: float = 1.0
    max_delay: float = 3600.0
    #: Seconds between looks at the queue of a waiting claim that nothing can wake (SQLite, a
    #: transaction pooler, a lost listener): one indexed read each, no write lock.
    poll_interval: float = 0.1

    def __post_init__(self) -> None:
        for name in ("lease", "base_delay", "max_delay", "poll_interval"):
            check_seconds(name, getattr(self, name))
        check_int("max_attempts", self.max_attempts, 1, INT32_MAX)

    def backoff(self, attempts: int) -> timedelta:
        """Exponential in the number of attempts, capped, with "equal jitter" (half fixed, half random)."""
        delay = min(self.max_delay, self.base_delay * 2 ** max(0, attempts - 1))
        return timedelta(seconds=delay / 2 + random.uniform(0, delay / 2))


def default_owner() -> str:
    """The owner a claim is made for unless told otherwise: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


COLUMNS = (
    "id",
    "payload",
    "attempts",
    "last_error",
    "status",
    "created_at",
    "updated_at",
    "available_at",
    "lease_owner",
    "lease_expires_at",
)


def _seconds(name: str, value: float | timedelta | None, default: float) -> timedelta:
    """A delay or lease length: finite, not negative, at most `validation.MAX_SECONDS`."""
    return timedelta(seconds=default) if value is None else check_duration(name, value, zero=True)


def _positive_seconds(name: str, value: float | timedelta | None, default: float) -> timedelta:
    return timedelta(seconds=default) if value is None else check_duration(name, value)


class DurableQueue(QueueAdmin):
    def __init__(self, scope: Scope, policy: QueuePolicy) -> None:
        self._scope = scope
        self.policy = policy
        self._queue = scope.table(scope.models.DurableUpdate)
        # Small writes, coalesced with other callers' by the group-commit writer.
        sa_dialect = scope.db.engine.dialect
        self._enqueue = writes.Enqueue(self._queue, sa_dialect)
        self._ack = writes.Ack(self._queue, sa_dialect)
        self._fail = writes.Fail(self._queue, sa_dialect)
        self._extend = writes.ExtendLease(self._queue, sa_dialect)
        self._waiter = QueueWaiter(scope, policy.poll_interval)

    async def enqueue(self, update: DurableUpdate | bytes, *, delay: float | timedelta | None = None) -> bool:
        """Store an update; False if one with the same id is already queued (it is left as it was)."""
        return await self.enqueue_many([update], delay=delay) == 1

    @metrics.timed("queue.enqueue")
    async def enqueue_many(
        self, updates: Iterable[DurableUpdate | bytes], *, delay: float | timedelta | None = None
    ) -> int:
        """Store several updates in one transaction; returns how many were new."""
        now = self._scope.now()
        available = now if delay is None else now + _seconds("delay", delay, 0)
        rows: dict[str, tuple[Any, ...]] = {}
        name, pending = self._scope.name, UpdateStatus.PENDING.value
        for item in updates:
            if isinstance(item, bytes | bytearray | memoryview):
                item = DurableUpdate(payload=bytes(item))
            if not isinstance(item, DurableUpdate):
                raise InvalidArgument(
                    "update", f"expected a DurableUpdate or bytes, got {type(item).__name__}"
                )
            # In the order of `writes.ENQUEUED`.
            rows.setdefault(item.id, (name, item.id, item.payload, pending, 0, now, now, available))
        if not rows:
            return 0
        added = await self._scope.submit(self._enqueue, list(rows.values()))
        if added and self._scope.db.host_session is None:  # a host's transaction is not committed yet
            self._scope.db.wakeups.notify(self._scope.name)
        return added

    @metrics.timed("queue.claim")
    async def claim(
        self,
        limit: int = 1,
        *,
        lease: float | timedelta | None = None,
        owner: str | None = None,
        wait: float | timedelta | None = None,
    ) -> list[DurableUpdate]:
        """Lease up to `limit` of the longest-available updates to `owner`; returned in enqueue order.

        A claimed update is available again when its lease expires, unless it is acked or failed first.
        One whose lease expired after its `max_attempts`-th claim becomes a dead letter instead.
        With `wait` (seconds), an empty queue is waited on until something can be claimed or `wait`
        has passed: woken by enqueues (see `tgpersist.sql.notify`), else polling.
        """
        check_int("limit", limit, 1, 10_000)
        owner = check_name("owner", owner) if owner is not None else default_owner()
        length = _positive_seconds("lease", lease, self.policy.lease)
        waiting = _seconds("wait", wait, 0)
        if waiting > timedelta(0):
            return await self._waiter.claim(lambda: self._claim_now(limit, owner, length), waiting)
        return await self._claim_now(limit, owner, length)

    async def _claim_now(self, limit: int, owner: str, length: timedelta) -> list[DurableUpdate]:

        died: list[Row[Any]] = []

        async def work(conn: AsyncConnection) -> list[Row[Any]]:
            # `now` is taken per attempt: a retried transaction must not hand out a shorter lease.
            now = self._scope.now()
            claimed: list[Row[Any]] = []
            died.clear()
            while len(claimed) < limit:
                rows = list(
                    await conn.execute(self._claim_statement(limit - len(claimed), owner, now, length))
                )
                claimed += [row for row in rows if row.status == UpdateStatus.PENDING.value]
                died.extend(row for row in rows if row.status != UpdateStatus.PENDING.value)
                if len(rows) == len(claimed) or not rows:
                    break  # nothing was dead-lettered, so no more are available
            return claimed

        rows = await self._scope.db.run(work, write=True)
        for row in died:
            report_dead_letter(self._scope.name, row.id, row.attempts, row.last_error)
        metrics.add("tgpersist.queue.claimed", len(rows), session=self._scope.name)
        rows.sort(key=lambda r: r.seq)
        return [self._to_domain(row) for row in rows]

    def _claim_statement(self, limit: int, owner: str, now: datetime, length: timedelta) -> Any:
        """UPDATE ... RETURNING that leases the oldest available rows, dead-lettering exhausted ones.

        A claimed row's `available_at` moves to its lease's end, so the index on (status, available_at)
        finds the next available rows without walking past leased ones.
        """
        queue = self._queue
        expires = now + length
        candidates = (
            select(queue.c.seq)
            .where(
                queue.c.session_name == self._scope.name,
                queue.c.status == UpdateStatus.PENDING.value,
                queue.c.available_at <= now,
            )
            .order_by(queue.c.available_at, queue.c.seq)
            .limit(limit)
        )
        if statements.claim_locks_rows(self._scope.dialect):
            candidates = candidates.with_for_update(skip_locked=True)
        # Only an expired lease leaves a pending row with max_attempts claims behind (fail() dead-letters).
        exhausted = queue.c.attempts >= self.policy.max_attempts

        def unless_exhausted(dead: Any, live: Any) -> Any:
            return case((exhausted, dead), else_=live)

        return (
            update(queue)
            .where(queue.c.seq.in_(candidates.scalar_subquery()))
            .values(
                status=unless_exhausted(UpdateStatus.DEAD.value, UpdateStatus.PENDING.value),
                attempts=unless_exhausted(queue.c.attempts, queue.c.attempts + 1),
                last_error=unless_exhausted(
                    literal("lease of ") + func.coalesce(queue.c.lease_owner, "?") + " expired unsettled",
                    queue.c.last_error,
                ),
                lease_owner=unless_exhausted(None, owner),
                lease_expires_at=unless_exhausted(None, expires),
                available_at=unless_exhausted(queue.c.available_at, expires),
                updated_at=now,
            )
            .returning(queue.c.seq, *(queue.c[c] for c in COLUMNS))
        )

    async def ack(self, update_id: str) -> bool:
        """The update was handled: delete it. False if it was not queued (e.g. acked already)."""
        return bool(await self.ack_many([update_id]))

    @metrics.timed("queue.ack")
    async def ack_many(self, update_ids: Iterable[str]) -> list[str]:
        """Delete several handled updates in one transaction; returns the ids that were still queued."""
        ids = sorted({check_name("update_id", update_id) for update_id in update_ids})
        if not ids:
            return []
        acked = await self._scope.submit(self._ack, ids)
        metrics.add("tgpersist.queue.acked", len(acked), session=self._scope.name)
        return acked

    @metrics.timed("queue.fail")
    async def fail(
        self,
        update_id: str,
        error: str | BaseException,
        *,
        retry_in: float | timedelta | None = None,
        owner: str | None = None,
    ) -> bool:
        """Handling failed: keep the error, retry after a backoff, or dead-letter after max_attempts.

        An exception is stored as `Type: message`; any error is cut to its first 4096 characters
        (NUL and lone surrogates, which no database stores, become U+FFFD). With `owner`, only
        while that owner holds the update's lease. False if not queued (or not held by `owner`).
        """
        check_name("update_id", update_id)
        if owner is not None:
            check_name("owner", owner)
        message = error_text("error", error, MAX_ERROR)
        explicit = None if retry_in is None else _seconds("retry_in", retry_in, 0)
        args = (update_id, owner, message, explicit, self.policy.backoff, self.policy.max_attempts)
        failed, died = await self._scope.submit(self._fail, args)
        metrics.add("tgpersist.queue.failed", int(failed), session=self._scope.name)
        if died is not None:
            report_dead_letter(self._scope.name, update_id, died, message)
        return failed

    async def extend_lease(
        self, update_id: str, *, owner: str, lease: float | timedelta | None = None
    ) -> bool:
        """Keep `owner`'s lease on an update for another `lease` seconds (from now).

        False if `owner` no longer holds it: the lease expired (another worker may have it) or it was
        settled. A handler that runs longer than a lease calls this before the lease runs out.
        """
        check_name("update_id", update_id)
        check_name("owner", owner)
        length = _positive_seconds("lease", lease, self.policy.lease)
        return await self._scope.submit(self._extend, (update_id, owner, length))

    def _key(self, update_id: str) -> tuple[Any, ...]:
        queue = self._queue
        return (queue.c.session_name == self._scope.name, queue.c.id == update_id)

    async def requeue(self, update_id: str) -> bool:
        """Make a dead (or waiting) update available now with a fresh attempt count.

        An update that a worker holds under a live lease is left alone (False), so that it is never
        handed to two workers at once.
        """
        return bool(await self.requeue_many([update_id]))

    async def dead_letters(self, limit: int = 100) -> list[DurableUpdate]:
        """Updates whose `max_attempts` claims all failed or expired, in the order they died."""
        return await self._list(UpdateStatus.DEAD, limit)

    async def pending(self, limit: int = 100) -> list[DurableUpdate]:
        """Queued updates that are not dead (available, waiting or leased), in the order claims take
        them: by when they are (or become) available; a leased one becomes available at its lease's end."""
        return await self._list(UpdateStatus.PENDING, limit)

    async def get(self, update_id: str) -> DurableUpdate | None:
        check_name("update_id", update_id)
        queue = self._queue
        stmt = select(queue.c.seq, *(queue.c[c] for c in COLUMNS)).where(*self._key(update_id))

        async def work(conn: AsyncConnection) -> Row[Any] | None:
            return (await conn.execute(stmt)).first()

        row = await self._scope.read(work)
        return None if row is None else self._to_domain(row)

    async def _list(self, status: UpdateStatus, limit: int) -> list[DurableUpdate]:
        check_int("limit", limit, 1, 1_000_000)
        queue = self._queue
        stmt = (
            select(queue.c.seq, *(queue.c[c] for c in COLUMNS))
            .where(queue.c.session_name == self._scope.name, queue.c.status == status.value)
            .order_by(queue.c.available_at, queue.c.seq)
            .limit(limit)
        )

        async def work(conn: AsyncConnection) -> list[DurableUpdate]:
            return [self._to_domain(row) for row in await conn.execute(stmt)]

        return await self._scope.read(work)

    @staticmethod
    def _to_domain(row: Row[Any]) -> DurableUpdate:
        values = {c: getattr(row, c) for c in COLUMNS}
        values["status"] = UpdateStatus(values["status"])
        return DurableUpdate(**values)
