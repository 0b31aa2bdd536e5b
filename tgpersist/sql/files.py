"""SQLite database files: created private to their owner (0600), a warning when others can read one,
and a typed error (not a silently new or ghost database) once the file was deleted or replaced."""

from __future__ import annotations

import logging
import os
import stat
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import URL

from tgpersist.errors import DatabaseUnavailable

log = logging.getLogger(__name__)


def sqlite_file(url: URL) -> str | None:
    """The file a SQLite URL names, as SQLite will open it; None for an in-memory or temporary database.

    With `?uri=true` the database is an SQLite URI (`file:x.db`, `file:/abs/x.db`, `file:///abs/x.db`,
    `file://localhost/abs/x.db`, percent-escapes decoded); without it, `file:x.db` is a plain file name.
    """
    database = url.database
    if not database or database == ":memory:":
        return None
    if not _is_uri(url):
        return database
    if not database.startswith("file:"):
        return database  # SQLite opens a name without the file: scheme as a plain file name
    if _uri_option(url, "mode") == "memory":
        return None
    rest = database[len("file:") :].split("?", 1)[0].split("#", 1)[0]
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        if authority not in ("", "localhost"):
            return None  # SQLite refuses a remote authority itself
        rest = slash + path
    path = unquote(rest)
    return None if path in ("", ":memory:") else path


def _is_uri(url: URL) -> bool:
    value = url.query.get("uri")
    text = value[-1] if isinstance(value, tuple) else value
    return text is not None and text.lower() in ("1", "true", "yes", "on")


def _uri_option(url: URL, name: str) -> str | None:
    """An SQLite URI parameter, from the URL's query or the URI in its database part."""
    value = url.query.get(name)
    if isinstance(value, tuple):
        value = value[-1]
    if value is None and url.database and "?" in url.database:
        value = parse_qs(url.database.split("?", 1)[1]).get(name, [None])[-1]
    return value


def may_create(url: URL) -> bool:
    """Whether SQLite would create a missing file for this URL (not `mode=ro`/`rw`, not `immutable`)."""
    if not _is_uri(url):
        return True
    return _uri_option(url, "mode") in (None, "rwc") and _uri_option(url, "immutable") in (None, "0")


#: What SQLite puts beside a database file; each holds database content while it exists.
COMPANIONS = ("-wal", "-shm", "-journal")


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
    """Log a warning (naming only the path) if other users may read or write the database file or its
    -wal/-shm/-journal beside it; True if any is exposed."""
    exposed = False
    for candidate in (path, *(path + suffix for suffix in COMPANIONS)):
        try:
            mode = os.stat(candidate).st_mode
        except OSError:
            continue
        if not stat.S_ISREG(mode) or not mode & 0o066:
            continue
        exposed = True
        log.warning(
            "SQLite database %s is readable or writable by other users (mode %03o); it holds auth "
            "keys: restrict it with `chmod 600`",
            candidate,
            stat.S_IMODE(mode),
        )
    return exposed


def _identity(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


#: Per engine, the check that its file is still the one it opened (see `guard_sqlite_file`).
_IDENTITY_CHECKS: weakref.WeakKeyDictionary[Engine, Callable[[], None]] = weakref.WeakKeyDictionary()


def check_file_unchanged(engine: Engine) -> None:
    """`DatabaseUnavailable` if `engine`'s SQLite file was deleted or replaced since it was opened: for
    connections held outside the pool (a checkout runs the same check)."""
    check = _IDENTITY_CHECKS.get(engine)
    if check is not None:
        check()


def guard_sqlite_file(engine: Engine) -> None:
    """Before each connection: create the database file 0600 if it is missing (SQLite gives its
    companions the same mode), else warn once if it (or a companion) is exposed to other users; and
    refuse to go on once the file was deleted or replaced while in use (SQLite itself would keep
    writing into a deleted file's inode, lost at close, or create a new empty database on the next
    connect): that becomes `DatabaseUnavailable` at connection checkout."""
    named = sqlite_file(engine.url)
    if named is None:
        return
    # A plain file name is resolved when the engine is made (as SQLAlchemy does); a URI's when SQLite
    # opens it, against the working directory of that moment.
    path = named if _is_uri(engine.url) else os.path.abspath(named)
    creatable = may_create(engine.url)
    checked = False
    opened: tuple[int, int] | None = None

    def check_identity() -> None:
        if opened is not None and _identity(os.path.abspath(path)) != opened:
            raise DatabaseUnavailable(path, None, "the SQLite file was deleted or replaced while in use")

    def before_connect(*_: Any) -> None:
        nonlocal checked, opened
        check_identity()
        target = os.path.abspath(path)
        created = creatable and create_private_file(target)
        if not created and not checked:
            warn_if_exposed(target)
        checked = True
        opened = opened or _identity(target)

    event.listen(engine, "do_connect", before_connect)
    event.listen(engine, "checkout", lambda *_: check_identity())
    _IDENTITY_CHECKS[engine] = check_identity
