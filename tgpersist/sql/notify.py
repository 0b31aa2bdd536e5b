"""Wake-ups for workers that wait on the durable queue: in-process signals, fed on PostgreSQL by one
LISTEN connection per store.

An enqueue through a store signals that store's waiters directly (both backends). On PostgreSQL the
queue table's trigger (revision 0005_queue_notify) sends a NOTIFY naming the account at commit, which
reaches every other store, in any process, through its listener: a connection of the engine taken
out of its pool (so it costs no pool slot, and no pool reset can drop the LISTEN), opened lazily by
the first waiter and closed by `Store.close()`. Without a listener — SQLite, a transaction pooler
(which cannot keep a LISTEN), a listener connection that died — waiters poll, and a dead listener
is reopened with a growing pause between tries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tgpersist.sql import engines

log = logging.getLogger(__name__)

#: Seconds to wait for the listener's connection and LISTEN before polling instead.
CONNECT_TIMEOUT = 10.0
#: Pause before the first attempt to reopen a failed listener; it doubles up to `MAX_RECONNECT_PAUSE`.
RECONNECT_PAUSE = 0.5
MAX_RECONNECT_PAUSE = 30.0


class Listener:
    """One LISTEN connection on `channel`; calls `on_notify(payload)` per notification and
    `on_change()` when it goes up or down (waiters then re-check and change how long they sleep)."""

    def __init__(self, engine: AsyncEngine, channel: str, on_notify: Any, on_change: Any) -> None:
        self._engine = engine
        self._channel = channel
        self._on_notify = on_notify
        self._on_change = on_change
        self._conn: AsyncConnection | None = None
        self._driver: Any = None  # asyncpg.Connection while listening
        self._opening = asyncio.Lock()
        self._next_try = 0.0
        self._pause = RECONNECT_PAUSE
        self._closed = False

    @property
    def listening(self) -> bool:
        driver = self._driver
        return driver is not None and not driver.is_closed()

    @property
    def backend_pid(self) -> int | None:
        """The server process of the LISTEN connection (None while not listening)."""
        return int(self._driver.get_server_pid()) if self.listening else None

    async def ensure(self) -> bool:
        """Listen if not yet (or no longer) listening and a try is due; whether it now listens."""
        if self.listening:
            return True
        if self._closed or self._opening.locked() or time.monotonic() < self._next_try:
            return False
        async with self._opening:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await self._open()
            except Exception as error:  # any failure to connect means: poll for now, retry later
                await self._discard()
                self._next_try = time.monotonic() + self._pause
                self._pause = min(MAX_RECONNECT_PAUSE, self._pause * 2)
                log.warning("queue listener unavailable (%s); polling instead", type(error).__name__)
                return False
        self._pause = RECONNECT_PAUSE
        self._on_change()
        return True

    async def _open(self) -> None:
        conn = self._conn = await self._engine.connect()
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        raw.detach()  # out of the pool: neither a pool slot nor a reset on check-in touches it
        driver.add_termination_listener(self._terminated)
        await driver.add_listener(self._channel, self._received)
        self._driver = driver
        log.debug("listening for enqueued updates on %s", self._channel)

    def _received(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._on_notify(payload)

    def _terminated(self, connection: Any) -> None:
        if connection is not self._driver or self._closed:
            return
        self._driver = None
        self._next_try = time.monotonic() + RECONNECT_PAUSE
        log.warning("queue listener connection lost; polling until it is back")
        self._on_change()

    async def _discard(self) -> None:
        driver, conn = self._driver, self._conn
        self._driver = self._conn = None
        if driver is not None and not driver.is_closed():
            with contextlib.suppress(Exception):
                await driver.close(timeout=CONNECT_TIMEOUT)
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        self._closed = True
        await self._discard()


class Wakeups:
    """The waiters of one store, per account, and what wakes them."""

    def __init__(self, engine: AsyncEngine, channel: str) -> None:
        self._events: dict[str, asyncio.Event] = {}
        listen = engine.dialect.name == "postgresql" and not engines.behind_pooler(engine)
        self._listener = Listener(engine, channel, self.notify, self.notify_all) if listen else None

    @property
    def listening(self) -> bool:
        """Whether notifications from other stores reach this one now (else waiters poll)."""
        return self._listener is not None and self._listener.listening

    @property
    def listener_pid(self) -> int | None:
        return None if self._listener is None else self._listener.backend_pid

    def ticket(self, account: str) -> asyncio.Event:
        """Take before looking at the queue; `wait` on it returns at once if `account` was signalled
        since, so that an enqueue between the look and the wait is not missed."""
        event = self._events.get(account)
        if event is None:
            event = self._events[account] = asyncio.Event()
        return event

    def notify(self, account: str) -> None:
        """Something was enqueued for `account`: wake its waiters."""
        event = self._events.pop(account, None)
        if event is not None:
            event.set()

    def notify_all(self) -> None:
        events, self._events = self._events, {}
        for event in events.values():
            event.set()

    async def wait(self, ticket: asyncio.Event, seconds: float) -> bool:
        """Sleep until `ticket` is signalled (True) or `seconds` pass (False)."""
        if self._listener is not None:
            await self._listener.ensure()
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                await ticket.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        self.notify_all()
