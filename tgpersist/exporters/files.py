"""Writing a new SQLite file in one step: built under a temporary name beside it, then moved in place.

Session files hold auth keys, so they are created readable by their owner only (mode 0600). An
existing file is never clobbered unless asked: readers never see a half-written file either way.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

from tgpersist.errors import InvalidArgument


def write_sqlite_file(
    path: str | Path, build: Callable[[sqlite3.Connection], None], *, overwrite: bool
) -> Path:
    """Create the SQLite file `path` with `build(conn)` (committed); returns the path written."""
    target = Path(path)
    if not target.parent.is_dir():
        raise InvalidArgument("path", f"{target.parent} is not a directory")
    if target.exists() and not overwrite:
        raise InvalidArgument("path", f"{target} already exists (overwrite it explicitly)")
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)  # mkstemp made it 0600
    try:
        conn = sqlite3.connect(temporary)
        try:
            with conn:
                build(conn)
        finally:
            conn.close()
        _move(temporary, target, overwrite)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return target


def _move(temporary: str, target: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # fails, atomically, if the target appeared meanwhile
    except FileExistsError:
        raise InvalidArgument("path", f"{target} already exists (overwrite it explicitly)") from None
    except OSError:  # no hard links on this file system: check and rename
        if target.exists():
            raise InvalidArgument("path", f"{target} already exists (overwrite it explicitly)") from None
        os.replace(temporary, target)
