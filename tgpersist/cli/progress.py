"""A one-line progress bar on stderr (`\\r`-redrawn), for imports long enough to need one.

Shown when the stream is a terminal and the work has run for over a second, or always when forced
(`--progress`). No dependency: a bar, a count and a percentage.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


class ProgressLine:
    """Call with (done, total) as work advances; `close()` ends the line if one was drawn."""

    def __init__(
        self, label: str, stream: TextIO | None = None, *, force: bool = False, delay: float = 1.0
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = force or _is_terminal(self.stream)
        self.delay = 0.0 if force else delay
        self.started = time.monotonic()
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if not self.drawn and time.monotonic() - self.started < self.delay:
            return
        fraction = 1.0 if total <= 0 else min(1.0, done / total)
        filled = int(WIDTH * fraction)
        bar = "#" * filled + "." * (WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total} {int(fraction * 100):3d}%")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
