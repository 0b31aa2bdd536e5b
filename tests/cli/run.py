"""Running the `tgpersist` CLI from async tests: in-process (no terminal), or as the installed
executable on a pseudo-terminal (`on_terminal`), answering its confirmation prompt."""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tgpersist.cli import main

PROMPT = b"Proceed? [y/N] "


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `tgpersist ARGV` (main() runs its own loop: off this thread)."""
    capsys.readouterr()
    try:
        status = await asyncio.to_thread(main, list(argv))
    except SystemExit as exit_:  # argparse usage errors
        status = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def _on_terminal(argv: tuple[str, ...], answer: str | None) -> tuple[int, str, bool]:
    executable = str(Path(sys.executable).parent / "tgpersist")
    master, slave = os.openpty()
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([executable, *argv], stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    output, asked = b"", False
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                raise AssertionError(f"no output for 60 s from tgpersist {argv}: {output!r}")
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if not asked and output.endswith(PROMPT):
                asked = True
                os.write(master, (answer or "").encode() + b"\n")
        status = proc.wait(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return status, output.decode().replace("\r\n", "\n"), asked


async def on_terminal(*argv: str, answer: str | None = None) -> tuple[int, str, bool]:
    """(exit status, everything it wrote to the terminal, whether it asked) of the real executable
    with stdin, stdout and stderr on a pseudo-terminal; `answer` is typed at the prompt."""
    return await asyncio.to_thread(_on_terminal, argv, answer)
