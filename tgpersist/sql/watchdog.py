"""Deadlines for units of work: `Attempt` (one try's time budget and whether COMMIT was sent) and
`Watchdog`, which cuts the driver connection when the budget runs out.

Cancelling a coroutine that waits on a frozen socket is not enough: its cleanup (ROLLBACK, closing the
connection) would wait on the same socket. Terminating the driver connection makes every pending and
later operation on it fail at once, so the unit ends with an error instead of hanging. SQLite's wait
for another writer is bounded instead by the busy timeout of that one transaction (`engines.BUSY_TIMEOUT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)


class Attempt:
    """One try of a unit of work: the deadline shared by all of its tries, and whether COMMIT was sent."""

    def __init__(self, timeout: float | None, deadline: float | None = None) -> None:
        self.timeout = timeout
        if deadline is None and timeout is not None:
            deadline = asyncio.get_running_loop().time() + timeout
        #: The event loop's time (monotonic) by which the unit must have ended; None: no limit.
        self.deadline = deadline
        #: Set once the work is done and COMMIT is being sent: a lost connection leaves the outcome unknown.
        self.committing = False

    @property
    def expired(self) -> bool:
        return self.deadline is not None and asyncio.get_running_loop().time() >= self.deadline

    def left(self) -> float | None:
        """Seconds until the deadline (0 once passed); None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    def connect_limit(self, connect_timeout: float | None) -> float | None:
        """Seconds a connection checkout may take: the connect timeout, or less if the deadline is nearer."""
        left = self.left()
        if left is None:
            return connect_timeout
        return left if connect_timeout is None else min(left, connect_timeout)

    def again(self) -> Attempt:
        """The next try: same deadline, COMMIT not sent."""
        return Attempt(self.timeout, self.deadline)


class Watchdog:
    """While entered, terminates `conn`'s driver connection if `attempt`'s deadline passes."""

    def __init__(self, conn: AsyncConnection, attempt: Attempt) -> None:
        self._conn = conn
        self._attempt = attempt
        self._timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> Watchdog:
        deadline = self._attempt.deadline
        if deadline is not None:
            driver = (await self._conn.get_raw_connection()).driver_connection
            self._timer = asyncio.get_running_loop().call_at(deadline, _cut, driver)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _cut(driver: Any) -> None:
    """End whatever `driver` is doing now: asyncpg closes its socket, sqlite3 interrupts the statement."""
    log.debug("unit of work overran its deadline: cutting its connection")
    with contextlib.suppress(Exception):
        terminate = getattr(driver, "terminate", None)
        if callable(terminate):  # asyncpg
            terminate()
            return
        sqlite = getattr(driver, "_conn", None)  # aiosqlite wraps a sqlite3.Connection
        if sqlite is not None:
            sqlite.interrupt()
