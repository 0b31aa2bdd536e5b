"""Running the `tgpersist` CLI in-process from async tests."""

from __future__ import annotations

import asyncio

import pytest

from tgpersist.cli import main


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `tgpersist ARGV` (main() runs its own loop: off this thread)."""
    capsys.readouterr()
    try:
        status = await asyncio.to_thread(main, list(argv))
    except SystemExit as exit_:  # argparse usage errors
        status = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return status, out, err
