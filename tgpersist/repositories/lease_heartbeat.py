"""`Heartbeat`: the background task that keeps renewing a held lease, and the runner of `on_lost`.

Both run as tasks kept in `_background`, so that a running one is never garbage-collected mid-sleep.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from tgpersist.errors import DatabaseUnavailable, LeaseLost

log = logging.getLogger("tgpersist.lease")

# Heartbeat and on_lost tasks, kept here so that a running one is never garbage-collected mid-sleep.
_background: set[asyncio.Task[None]] = set()


class Renewable(Protocol):
    """What the heartbeat needs of a held lease (`SessionLease`)."""

    name: str
    heartbeat: float

    @property
    def lost(self) -> bool: ...

    async def renew(self) -> object: ...


HeldLease = TypeVar("HeldLease", bound=Renewable)


def _keep(task: asyncio.Task[None]) -> None:
    _background.add(task)
    task.add_done_callback(_background.discard)


class Heartbeat:
    """Renews `lease` every `lease.heartbeat` seconds (none if that is 0) until it is lost or stopped.

    Renewals start `heartbeat` apart, however long each one waited for the database; after a failed
    one the next comes sooner. `extra` goes with every log record (session, owner, token).
    """

    def __init__(self, lease: Renewable, extra: dict[str, Any]) -> None:
        self._lease = lease
        self._extra = extra
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._lease.heartbeat <= 0:
            return
        task = asyncio.get_running_loop().create_task(
            self._beat(), name=f"tgpersist lease heartbeat {self._lease.name!r}"
        )
        _keep(task)
        self._task = task

    async def stop(self) -> None:
        """Cancel the task and wait for it (not when called from the heartbeat itself)."""
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
        lease = self._lease
        loop = asyncio.get_running_loop()
        delay = lease.heartbeat
        while True:
            await asyncio.sleep(delay)
            if lease.lost:
                return
            started = loop.time()
            try:
                await lease.renew()
            except LeaseLost:
                return  # the lease has logged it and called on_lost
            except Exception as error:  # a transient database error: try again sooner
                if not isinstance(error, DatabaseUnavailable):
                    log.warning(
                        "renewing the lease on session %r failed: %s",
                        lease.name,
                        type(error).__name__,
                        extra=self._extra,
                    )
                delay = min(lease.heartbeat, 1.0) / 2
            else:
                delay = max(0.0, lease.heartbeat - (loop.time() - started))


def call_on_lost(callback: Callable[[HeldLease], Any], lease: HeldLease) -> None:
    """Run the `on_lost` callback now (a coroutine function: as a task started at once)."""
    try:
        result = callback(lease)
        if inspect.isawaitable(result):
            _keep(asyncio.ensure_future(_await_on_lost(result, lease.name)))
    except Exception:
        log.exception("the on_lost callback of the lease on session %r failed", lease.name)


async def _await_on_lost(result: Awaitable[Any], name: str) -> None:
    try:
        await result
    except Exception:
        log.exception("the on_lost callback of the lease on session %r failed", name)
