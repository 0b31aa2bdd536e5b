"""Progress of an import or export on stderr: count, percentage, rate and ETA.

On a terminal, one `\\r`-redrawn bar once the work has run for over a second; elsewhere (a log, a
pipe) plain lines once it has run for `interval` seconds, at most one per `interval`, and the last.
`--progress` forces it on from the first update. Plain code rather than `rich` or `tqdm` (both on
PyPI and well kept): a bar, a rate and an ETA are twenty lines, not worth a dependency or an extra.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tgpersist.cli.output import is_terminal, seconds

WIDTH = 30


class ProgressLine:
    """Call with (done, total) as work advances; `close()` ends the bar if one was drawn."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        force: bool = False,
        delay: float = 1.0,
        interval: float = 5.0,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = is_terminal(self.stream)
        self.force = force
        # Off a terminal the first line waits as long as the lines are apart: short work prints nothing.
        self.delay = 0.0 if force else delay if self.terminal else max(delay, interval)
        self.interval = 0.0 if force else interval
        self.started = time.monotonic()
        self.last_line: float | None = None
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        elapsed = now - self.started
        if not self.drawn and elapsed < self.delay:
            return
        throttled = self.last_line is not None and now - self.last_line < self.interval
        if not self.terminal and throttled and done < total:
            return
        fraction = 1.0 if total <= 0 else min(1.0, done / total)
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 and done < total else (0.0 if done >= total else None)
        figures = f"{done}/{total} {int(fraction * 100):3d}% {rate:,.0f}/s ETA {seconds(eta)}"
        if self.terminal:
            filled = int(WIDTH * fraction)
            bar = "#" * filled + "." * (WIDTH - filled)
            self.stream.write(f"\r{self.label} [{bar}] {figures}\x1b[K")
        else:
            self.stream.write(f"{self.label}: {figures}\n")
        self.stream.flush()
        self.drawn = True
        self.last_line = now

    def close(self) -> None:
        if self.drawn and self.terminal:
            self.stream.write("\n")
            self.stream.flush()
        self.drawn = False
