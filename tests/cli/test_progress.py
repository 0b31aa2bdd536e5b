"""The `\\r` progress line: drawn on a terminal once work has run over a second, or when forced."""

from __future__ import annotations

import io

import pytest

from tgpersist.cli import progress as progress_module
from tgpersist.cli.progress import ProgressLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_forced_progress_draws_every_update_and_ends_the_line() -> None:
    stream = io.StringIO()
    line = ProgressLine("peers", stream, force=True)
    line(0, 4)
    line(2, 4)
    line(4, 4)
    line.close()
    bar = "#" * 15 + "." * 15
    assert stream.getvalue() == (
        f"\rpeers [{'.' * 30}] 0/4   0%\rpeers [{bar}] 2/4  50%\rpeers [{'#' * 30}] 4/4 100%\n"
    )


def test_nothing_is_drawn_when_not_a_terminal_or_within_the_first_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quiet = io.StringIO()
    line = ProgressLine("peers", quiet)
    line(1, 2)
    line.close()
    assert quiet.getvalue() == ""

    clock = iter([100.0, 100.5, 101.5, 101.6])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    terminal = Terminal()
    line = ProgressLine("peers", terminal)  # started at 100.0
    line(1, 4)  # 100.5: too early
    assert terminal.getvalue() == ""
    line(2, 4)  # 101.5: drawn
    line(4, 4)  # drawn without looking at the clock again
    line.close()
    assert terminal.getvalue().count("\rpeers [") == 2 and terminal.getvalue().endswith("4/4 100%\n")


def test_an_empty_total_counts_as_done() -> None:
    stream = io.StringIO()
    line = ProgressLine("peers", stream, force=True)
    line(0, 0)
    line.close()
    assert stream.getvalue() == f"\rpeers [{'#' * 30}] 0/0 100%\n"
