"""The database's clock, as a store reads it: every "now" that decides what a stored row means (when a
queued update is available, a queue lease's end, a dedup key's or a conversation's expiry) comes from
it, so that processes on hosts whose clocks disagree still agree on those.

On PostgreSQL the clock is sampled (`SELECT clock_timestamp()`, once at open and again every
`RESAMPLE` seconds while in use) and read between samples as the sample plus this host's monotonic
time since: no statement per call, and a host clock that is off, or is stepped, does not matter. The
error is at most half the sample's round trip plus the monotonic clock's drift since (NTP keeps rates
within 0.05 %). SQLite has no server: its processes share one host, whose clock is the database's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist.clock import as_utc, utcnow

log = logging.getLogger(__name__)

#: Seconds after which a sample is taken again (in the background, by the next read of the clock).
RESAMPLE = 60.0
#: A sample whose round trip took longer than this many seconds is not trusted (the old one stays).
MAX_ROUND_TRIP = 1.0
#: Seconds before another try after a sample failed or was too slow (reads keep the last one).
RETRY_PAUSE = 5.0

Sampler = Callable[[Callable[[AsyncConnection], Awaitable[None]]], Awaitable[object]]


class ServerClock:
    """`now()`: the database server's time in UTC. `sampler(work)` runs `work(conn)` in a transaction
    of the store's (None: the database has no server of its own and the host clock is its clock)."""

    def __init__(self, sampler: Sampler | None) -> None:
        self._sampler = sampler
        self._anchor: tuple[datetime, float] | None = None  # server time, monotonic time at that moment
        self._resampling: asyncio.Task[None] | None = None
        self._next_try = 0.0

    @property
    def sampled(self) -> bool:
        """Whether `now()` reads the server's clock (False: the host's, until a first sample)."""
        return self._sampler is None or self._anchor is not None

    def now(self) -> datetime:
        anchor = self._anchor
        if anchor is None:
            self._resample_soon()
            return utcnow()
        server_time, at = anchor
        elapsed = time.monotonic() - at
        if elapsed > RESAMPLE:
            self._resample_soon()
        return server_time + timedelta(seconds=elapsed)

    async def sample(self, conn: AsyncConnection) -> None:
        """Read the server's clock on `conn` (inside the caller's transaction)."""
        if self._sampler is None:
            return
        sent = time.monotonic()
        server_time = (await conn.execute(select(func.clock_timestamp()))).scalar_one()
        received = time.monotonic()
        if received - sent > MAX_ROUND_TRIP and self._anchor is not None:
            log.debug("database clock sample took %.3f s; the previous one stays", received - sent)
            self._next_try = received + RETRY_PAUSE
            return
        self._anchor = (as_utc(server_time), (sent + received) / 2)

    def _resample_soon(self) -> None:
        if self._sampler is None or (self._resampling is not None and not self._resampling.done()):
            return
        if time.monotonic() < self._next_try:
            return
        try:
            self._resampling = asyncio.get_running_loop().create_task(self._resample(self._sampler))
        except RuntimeError:  # no running loop (a synchronous caller): the next async read samples
            return

    async def _resample(self, sampler: Sampler) -> None:
        try:
            await sampler(self.sample)
        except Exception as error:  # the clock keeps its last sample; a later read tries again
            self._next_try = time.monotonic() + RETRY_PAUSE
            log.debug("database clock not sampled (%s)", type(error).__name__)

    async def close(self) -> None:
        task, self._resampling = self._resampling, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
