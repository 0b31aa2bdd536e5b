"""`PoolWatch`: counts what an engine's pool does (connections opened, most checked out at once), for
tests and benchmarks that check a pool is sized for its callers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


class PoolWatch:
    """Listens to the pool of `engine` from now on; `reset()` starts counting afresh."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.opened = 0
        self.busy = 0
        self.peak = 0
        pool = engine.sync_engine.pool
        event.listen(pool, "connect", self._connected)
        event.listen(pool, "checkout", self._checked_out)
        event.listen(pool, "checkin", self._checked_in)

    def reset(self) -> None:
        self.opened = 0
        self.peak = self.busy

    def _connected(self, *_: Any) -> None:
        self.opened += 1

    def _checked_out(self, *_: Any) -> None:
        self.busy += 1
        self.peak = max(self.peak, self.busy)

    def _checked_in(self, *_: Any) -> None:
        self.busy -= 1
