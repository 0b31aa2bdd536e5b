"""`QueueWaiter`: a claim that waits for something to claim, woken by enqueues (`sql.notify`).

Between claims it sleeps until whichever comes first: a wake-up for the account, the moment the
earliest pending update becomes available (a delayed enqueue, a backoff after `fail`, a lease that
runs out), the caller's deadline, or the poll interval — short while no listener carries other
processes' enqueues (SQLite, a transaction pooler, a lost listener connection), long while one does
(it then only catches what no NOTIFY announces, such as a `requeue`). Polling reads one indexed
`min(available_at)`; it takes no write lock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import String, bindparam, func, select
from sqlalchemy.sql import Select

from tgpersist.domain import DurableUpdate, UpdateStatus
from tgpersist.repositories.scope import Scope
from tgpersist.sql import reads

#: Seconds between looks at the queue while a listener announces other processes' enqueues.
LISTENING_POLL = 10.0
#: Seconds a woken waiter lets further enqueues gather before it claims: under a stream of enqueues
#: every waiter of every process is woken by each one, and one claim of many beats many of one.
WAKE_GATHER = 0.01


class QueueWaiter:
    def __init__(self, scope: Scope, poll_interval: float) -> None:
        self._scope = scope
        self._poll = poll_interval
        queue = scope.table(scope.models.DurableUpdate)
        next_available: Select[tuple[object]] = select(func.min(queue.c.available_at)).where(
            queue.c.session_name == bindparam("session_name", type_=String),
            queue.c.status == UpdateStatus.PENDING.value,
        )
        self._next_available = reads.CompiledRead(next_available, scope.db.engine.dialect)

    async def claim(
        self, claim_now: Callable[[], Awaitable[list[DurableUpdate]]], wait: timedelta
    ) -> list[DurableUpdate]:
        """`claim_now()` until it claims something or `wait` has passed (then the empty list)."""
        wakeups = self._scope.db.wakeups
        name = self._scope.name
        deadline = time.monotonic() + wait.total_seconds()
        while True:
            ticket = wakeups.ticket(name)
            claimed = await claim_now()
            if claimed:
                return claimed
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                pause = min(remaining, LISTENING_POLL if wakeups.listening else self._poll)
                soonest = await self._soonest()
                if soonest is not None:
                    if soonest <= 0:
                        break  # something is available (or became so): claim it
                    pause = min(pause, soonest)
                if await wakeups.wait(ticket, pause):
                    await asyncio.sleep(min(WAKE_GATHER, max(0.0, deadline - time.monotonic())))
                    break

    async def _soonest(self) -> float | None:
        """Seconds until the earliest pending update is available (<= 0: now); None if none."""
        rows = await self._scope.db.fetch(self._next_available, {"session_name": self._scope.name})
        soonest = rows[0][0] if rows else None
        return None if soonest is None else (soonest - self._scope.now()).total_seconds()
