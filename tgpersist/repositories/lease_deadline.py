"""`LeaseDeadline`: when a lease holder must count its lease as lost, by its own monotonic clock.

The database decides expiry (its `now` + ttl, stamped when a renewal arrives). The holder cannot ask
it while the route is cut or the process was frozen, so it keeps its own deadline: `ttl - margin`
after it *sent* the last renewal that succeeded. That moment comes before the database's expiry
(the stamp is taken later than the send), so by the time another process can acquire, the old holder
already counts its lease as lost: at every instant at most one process believes it holds the lease.

The margin (`MARGIN_SHARE` of the ttl, so 3 s of a 30 s lease) absorbs a clock running at a different
rate from the server's (NTP slews by at most 0.05 %) and the scheduling delay between the deadline and
the `on_lost` callback stopping the client. It stays well under ttl/2: a healthy holder renewing every
ttl/3 keeps two thirds of its lease in hand at each renewal and never loses it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: The share of the ttl taken off the holder's local deadline (see the module docstring).
MARGIN_SHARE = 0.1


def margin_for(ttl: float) -> float:
    """Seconds before the database's expiry at which the holder counts its lease lost."""
    return ttl * MARGIN_SHARE


class LeaseDeadline:
    """A monotonic deadline that moves forward with each successful renewal and fires `on_passed` once.

    `passed` is computed from the clock on every read, so it is right even first thing after the
    process was frozen (SIGSTOP) and before any timer or task of its event loop ran.
    """

    def __init__(self, ttl: float, sent: float, on_passed: Callable[[], None]) -> None:
        self.ttl = ttl
        self.margin = margin_for(ttl)
        self._on_passed = on_passed
        self._at = sent + ttl - self.margin
        self._timer: asyncio.TimerHandle | None = None
        self._arm()

    @staticmethod
    def now() -> float:
        """The clock of deadlines: CLOCK_MONOTONIC, which keeps counting while the process is stopped."""
        return time.monotonic()

    @property
    def at(self) -> float:
        return self._at

    @property
    def passed(self) -> bool:
        return self.now() >= self._at

    def left(self) -> float:
        """Seconds until the deadline (0 once it passed)."""
        return max(0.0, self._at - self.now())

    def extend(self, sent: float) -> bool:
        """A renewal sent at `sent` succeeded: the deadline moves to `sent + ttl - margin`.

        False (and nothing moves) if the deadline passed meanwhile: a lost lease stays lost.
        """
        if self.passed:
            return False
        self._at = max(self._at, sent + self.ttl - self.margin)
        self._arm()
        return True

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: `passed` still tells, on every read
            return
        self._timer = loop.call_later(max(0.0, self._at - self.now()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self.passed:
            self._on_passed()
        else:  # woken early (the loop's clock and ours agree, but be exact): wait for the rest
            self._arm()
