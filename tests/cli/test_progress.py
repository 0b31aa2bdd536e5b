"""Progress on stderr: a `\\r` bar with rate and ETA on a terminal, plain throttled lines elsewhere."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from tgpersist.cli import progress as progress_module
from tgpersist.cli.progress import ProgressLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def clock(monkeypatch: pytest.MonkeyPatch, *times: float) -> None:
    ticks: Iterator[float] = iter(times)
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(ticks))


def test_a_terminal_gets_a_bar_with_rate_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    clock(monkeypatch, 100.0, 100.5, 102.0, 104.0)
    terminal = Terminal()
    line = ProgressLine("peers", terminal)  # started at 100.0
    line(100, 1000)  # 100.5: within the first second, nothing yet
    assert terminal.getvalue() == ""
    line(500, 1000)  # 102.0: 250/s, 500 left: ETA 2s
    line(1000, 1000)  # 104.0
    line.close()
    half = "#" * 15 + "." * 15
    assert terminal.getvalue() == (
        f"\rpeers [{half}] 500/1000  50% 250/s ETA 2s\x1b[K"
        f"\rpeers [{'#' * 30}] 1000/1000 100% 250/s ETA 0s\x1b[K\n"
    )


def test_elsewhere_plain_lines_at_most_every_interval_and_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    clock(monkeypatch, 0.0, 2.0, 5.0, 6.0, 10.0, 11.0, 12.0)
    log = io.StringIO()
    line = ProgressLine("peers", log)
    line(10, 100)  # 2.0: too early (short work prints nothing)
    line(50, 100)  # 5.0: printed
    line(60, 100)  # 6.0: within 5 s of the last line
    line(100, 200)  # 10.0: printed
    line(110, 200)  # 11.0: skipped
    line(200, 200)  # 12.0: the last one always
    line.close()
    assert log.getvalue().splitlines() == [
        "peers: 50/100  50% 10/s ETA 5s",
        "peers: 100/200  50% 10/s ETA 10s",
        "peers: 200/200 100% 17/s ETA 0s",
    ]


def test_forced_progress_prints_every_update_and_an_empty_total_counts_as_done() -> None:
    log = io.StringIO()
    line = ProgressLine("peers", log, force=True)
    line(0, 0)
    line(0, 0)
    line.close()
    assert log.getvalue().splitlines() == ["peers: 0/0 100% 0/s ETA 0s"] * 2
