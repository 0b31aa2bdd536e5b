"""`DurableQueue`: updates received but not yet handled, delivered at least once to leasing workers.

`claim` leases the oldest available updates to one owner (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite:
one `UPDATE ... RETURNING` under `BEGIN IMMEDIATE`). `ack` deletes; `fail` schedules a retry after an
exponential backoff with jitter, or moves the update to the dead letters after `max_attempts` claims.
A lease that expires (its worker died) makes the update available again.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist import dialect
from tgpersist.clock import utcnow
from tgpersist.domain import DurableUpdate, UpdateStatus
from tgpersist.domain.updates import MAX_ERROR
from tgpersist.errors import InvalidArgument
from tgpersist.repositories.scope import Scope
from tgpersist.validation import INT32_MAX, check_int, check_name, check_text


@dataclass(frozen=True)
class QueuePolicy:
    """How the durable queue leases and retries."""

    lease: float = 60.0
    max_attempts: int = 10
    base_delay: float = 1.0
    max_delay: float = 3600.0

    def __post_init__(self) -> None:
        for name in ("lease", "base_delay", "max_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InvalidArgument(name, "must be a positive number of seconds")
        check_int("max_attempts", self.max_attempts, 1, INT32_MAX)

    def backoff(self, attempts: int) -> timedelta:
        """Exponential in the number of attempts, capped, with "equal jitter" (half fixed, half random)."""
        delay = min(self.max_delay, self.base_delay * 2 ** max(0, attempts - 1))
        return timedelta(seconds=delay / 2 + random.uniform(0, delay / 2))


def default_owner() -> str:
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
    if value is None:
        return timedelta(seconds=default)
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(name, "expected seconds or a timedelta")
    else:
        seconds = float(value)
    if seconds < 0:
        raise InvalidArgument(name, "must not be negative")
    return timedelta(seconds=seconds)


class DurableQueue:
    def __init__(self, scope: Scope, policy: QueuePolicy) -> None:
        self._scope = scope
        self.policy = policy
        self._queue = scope.table(scope.models.DurableUpdate)

    async def enqueue(self, update: DurableUpdate | bytes, *, delay: float | timedelta | None = None) -> bool:
        """Store an update; False if one with the same id is already queued (it is left as it was)."""
        return await self.enqueue_many([update], delay=delay) == 1

    async def enqueue_many(
        self, updates: Iterable[DurableUpdate | bytes], *, delay: float | timedelta | None = None
    ) -> int:
        """Store several updates in one transaction; returns how many were new."""
        now = utcnow()
        available = now + _seconds("delay", delay, 0)
        rows: dict[str, dict[str, Any]] = {}
        for item in updates:
            if isinstance(item, bytes | bytearray | memoryview):
                item = DurableUpdate(payload=bytes(item))
            if not isinstance(item, DurableUpdate):
                raise InvalidArgument(
                    "update", f"expected a DurableUpdate or bytes, got {type(item).__name__}"
                )
            rows.setdefault(
                item.id,
                {
                    "session_name": self._scope.name,
                    "id": item.id,
                    "payload": item.payload,
                    "status": UpdateStatus.PENDING.value,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                    "available_at": available,
                },
            )
        if not rows:
            return 0
        queue = self._queue
        stmt = dialect.insert_ignore(queue, self._scope.dialect, ["session_name", "id"]).returning(queue.c.id)

        async def work(conn: AsyncConnection) -> int:
            return len((await conn.execute(stmt, list(rows.values()))).all())

        return await self._scope.write(work)

    async def claim(
        self, limit: int = 1, *, lease: float | timedelta | None = None, owner: str | None = None
    ) -> list[DurableUpdate]:
        """Lease up to `limit` of the oldest available updates to `owner`, oldest first."""
        check_int("limit", limit, 1, 10_000)
        owner = check_name("owner", owner) if owner is not None else default_owner()
        now = utcnow()
        expires = now + _seconds("lease", lease, self.policy.lease)
        queue = self._queue
        candidates = (
            select(queue.c.seq)
            .where(
                queue.c.session_name == self._scope.name,
                queue.c.status == UpdateStatus.PENDING.value,
                queue.c.available_at <= now,
                (queue.c.lease_expires_at.is_(None)) | (queue.c.lease_expires_at <= now),
            )
            .order_by(queue.c.available_at, queue.c.seq)
            .limit(limit)
        )
        if dialect.claim_locks_rows(self._scope.dialect):
            candidates = candidates.with_for_update(skip_locked=True)
        stmt = (
            update(queue)
            .where(queue.c.seq.in_(candidates.scalar_subquery()))
            .values(
                lease_owner=owner,
                lease_expires_at=expires,
                attempts=queue.c.attempts + 1,
                updated_at=now,
            )
            .returning(queue.c.seq, *(queue.c[c] for c in COLUMNS))
        )

        async def work(conn: AsyncConnection) -> list[Row[Any]]:
            return list(await conn.execute(stmt))  # read every RETURNING row before commit

        rows = await self._scope.db.run(work, write=True)
        rows.sort(key=lambda r: (r.available_at, r.seq))
        return [self._to_domain(row) for row in rows]

    async def ack(self, update_id: str) -> bool:
        """The update was handled: delete it. False if it was not queued (e.g. acked already)."""
        check_name("update_id", update_id)
        queue = self._queue
        stmt = delete(queue).where(queue.c.session_name == self._scope.name, queue.c.id == update_id)

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(stmt)).rowcount > 0

        return await self._scope.db.run(work, write=True)

    async def fail(
        self, update_id: str, error: str | BaseException, *, retry_in: float | timedelta | None = None
    ) -> bool:
        """Handling failed: keep the error, retry after a backoff, or dead-letter after max_attempts.

        An exception is stored as `Type: message`, cut to the first 4096 characters. False if not queued.
        """
        check_name("update_id", update_id)
        message = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
        message = check_text("error", message, 1 << 20)[:MAX_ERROR]
        explicit = None if retry_in is None else _seconds("retry_in", retry_in, 0)
        queue = self._queue
        key = (queue.c.session_name == self._scope.name, queue.c.id == update_id)

        async def work(conn: AsyncConnection) -> bool:
            current = select(queue.c.attempts).where(*key)
            if dialect.claim_locks_rows(self._scope.dialect):
                current = current.with_for_update()
            attempts = (await conn.execute(current)).scalar_one_or_none()
            if attempts is None:
                return False
            now = utcnow()
            dead = attempts >= self.policy.max_attempts
            values: dict[str, Any] = {
                "last_error": message,
                "lease_owner": None,
                "lease_expires_at": None,
                "updated_at": now,
                "available_at": now + (explicit if explicit is not None else self.policy.backoff(attempts)),
                "status": (UpdateStatus.DEAD if dead else UpdateStatus.PENDING).value,
            }
            await conn.execute(update(queue).where(*key).values(**values))
            return True

        return await self._scope.db.run(work, write=True)

    async def requeue(self, update_id: str) -> bool:
        """Make a dead (or waiting) update available now with a fresh attempt count."""
        check_name("update_id", update_id)
        queue = self._queue
        now = utcnow()
        stmt = (
            update(queue)
            .where(queue.c.session_name == self._scope.name, queue.c.id == update_id)
            .values(
                status=UpdateStatus.PENDING.value,
                attempts=0,
                available_at=now,
                updated_at=now,
                lease_owner=None,
                lease_expires_at=None,
            )
        )

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(stmt)).rowcount > 0

        return await self._scope.db.run(work, write=True)

    async def dead_letters(self, limit: int = 100) -> list[DurableUpdate]:
        """Updates that failed `max_attempts` times, oldest first."""
        return await self._list(UpdateStatus.DEAD, limit)

    async def pending(self, limit: int = 100) -> list[DurableUpdate]:
        """Queued updates that are not dead (leased, waiting or available), oldest first."""
        return await self._list(UpdateStatus.PENDING, limit)

    async def get(self, update_id: str) -> DurableUpdate | None:
        check_name("update_id", update_id)
        queue = self._queue
        stmt = select(queue.c.seq, *(queue.c[c] for c in COLUMNS)).where(
            queue.c.session_name == self._scope.name, queue.c.id == update_id
        )

        async def work(conn: AsyncConnection) -> Row[Any] | None:
            return (await conn.execute(stmt)).first()

        row = await self._scope.read(work)
        return None if row is None else self._to_domain(row)

    async def counts(self) -> dict[str, int]:
        """How many updates are pending and dead."""
        queue = self._queue
        stmt = (
            select(queue.c.status, func.count())
            .where(queue.c.session_name == self._scope.name)
            .group_by(queue.c.status)
        )

        async def work(conn: AsyncConnection) -> dict[str, int]:
            found = {status: int(n) for status, n in await conn.execute(stmt)}
            return {s.value: found.get(s.value, 0) for s in UpdateStatus}

        return await self._scope.read(work)

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


def is_leased(update: DurableUpdate, now: datetime | None = None) -> bool:
    """Whether a worker currently holds `update`."""
    return update.lease_expires_at is not None and update.lease_expires_at > (now or utcnow())
