"""SQLite database files: created private to their owner (0600), a warning when others can read one,
and a typed error (not a silently new or ghost database) once the file was deleted or replaced."""

from __future__ import annotations

import logging
import os
import stat
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import URL

from tgpersist.errors import DatabaseUnavailable

log = logging.getLogger(__name__)


def sqlite_file(url: URL) -> str | None:
    """The file a SQLite URL names; None for an in-memory or URI-style (`file:...`) database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def create_private_file(path: str) -> bool:
    """Create `path` empty with mode 0600 if it does not exist (SQLite then uses it); True if created.

    SQLite gives its -wal, -shm and -journal files the mode of the database file.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return False  # it exists, or cannot be created: SQLite reports the latter in its own words
    os.close(fd)
    return True


def warn_if_exposed(path: str) -> bool:
    """Log a warning (naming only the path) if other users may read or write the file; True if so."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    if not stat.S_ISREG(mode) or not mode & 0o066:
        return False
    log.warning(
        "SQLite database %s is readable or writable by other users (mode %03o); it holds auth keys: "
        "restrict it with `chmod 600`",
        path,
        stat.S_IMODE(mode),
    )
    return True


def _identity(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def guard_sqlite_file(engine: Engine) -> None:
    """Create the file private; warn if exposed; refuse to go on once it was deleted or replaced.

    SQLite itself keeps writing into a deleted file's inode (lost at close) and would create a new,
    empty database on the next connect: both become `DatabaseUnavailable` at connection checkout.
    """
    path = sqlite_file(engine.url)
    if path is None:
        return
    checked = False
    opened: tuple[int, int] | None = None

    def check_identity() -> None:
        if opened is not None and _identity(path) != opened:
            raise DatabaseUnavailable(path, None, "the SQLite file was deleted or replaced while in use")

    def before_connect(*_: Any) -> None:
        nonlocal checked, opened
        check_identity()
        if not create_private_file(path) and not checked:
            warn_if_exposed(path)
        checked = True
        opened = opened or _identity(path)

    event.listen(engine, "do_connect", before_connect)
    event.listen(engine, "checkout", lambda *_: check_identity())
