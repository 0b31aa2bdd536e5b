"""Which driver errors mean what: retry the transaction, a missing parent row, a lost connection, an
unreachable database (asyncpg, aiosqlite/sqlite3 and the raw socket errors a connect attempt raises)."""

from __future__ import annotations

import asyncio
import os

from sqlalchemy.exc import DBAPIError

#: SQLSTATEs after which re-running the whole transaction is the documented fix.
_RETRY_SQLSTATES = {"40001", "40P01", "55P03"}
#: SQLSTATEs of a connection that is gone or refused: class 08 and the server shutting down/starting.
_CONNECTION_SQLSTATES = ("08", "57P01", "57P02", "57P03")
#: asyncpg's and SQLAlchemy's words for a connection that died under it.
_DISCONNECT_WORDS = ("connection was closed", "connection is closed", "connection has been released")
#: sqlite3's words for a database file that is gone, moved or no longer writable.
_SQLITE_FILE_WORDS = ("readonly database", "disk i/o error", "unable to open database", "no such file")


def _orig(error: BaseException) -> BaseException | None:
    return error.orig if isinstance(error, DBAPIError) else None


def _sqlstate(orig: BaseException | None) -> str | None:
    if orig is None:
        return None
    state = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return state if isinstance(state, str) else None


def is_retryable(error: BaseException) -> bool:
    """A serialisation failure or deadlock (PostgreSQL), or a busy/locked database (SQLite)."""
    orig = _orig(error)
    if orig is None:
        return False
    if _sqlstate(orig) in _RETRY_SQLSTATES:
        return True
    message = str(orig).lower()
    return "database is locked" in message or "database is busy" in message


def is_missing_parent(error: BaseException) -> bool:
    """A foreign-key violation: the row's session does not exist (any more)."""
    orig = _orig(error)
    if orig is None:
        return False
    if getattr(orig, "sqlstate", None) == "23503":
        return True
    return "foreign key constraint" in str(orig).lower()


def is_disconnect(error: BaseException) -> bool:
    """The connection died under a statement (server restarted, route reset, connection terminated)."""
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        state = _sqlstate(error.orig)
        if state is not None and state.startswith(_CONNECTION_SQLSTATES):
            return True
        return any(word in str(error.orig).lower() for word in _DISCONNECT_WORDS)
    return isinstance(error, ConnectionError)


def is_unreachable(error: BaseException) -> bool:
    """A connection could not be made: refused, unresolvable, timed out, or the server not accepting."""
    if isinstance(error, DBAPIError):
        state = _sqlstate(error.orig)
        return state is not None and state.startswith(("08001", "08004", "08006", "57P03"))
    return isinstance(error, OSError | asyncio.TimeoutError) and not isinstance(error, ConnectionResetError)


def is_sqlite_file_gone(error: BaseException) -> bool:
    """SQLite could not write (or open) its file: deleted or moved while open, read-only, disk failing."""
    orig = _orig(error)
    if orig is None or type(orig).__module__.split(".")[0] not in ("sqlite3", "aiosqlite"):
        return False
    return any(word in str(orig).lower() for word in _SQLITE_FILE_WORDS)


def problem_of(error: BaseException) -> str:
    """A short description of a connection failure that carries no SQL, parameters or password."""
    orig = _orig(error) or error
    if isinstance(orig, asyncio.TimeoutError):
        return "timed out"
    if isinstance(orig, OSError) and (orig.errno or orig.strerror):
        return (os.strerror(orig.errno) if orig.errno else str(orig.strerror)).lower()
    first = str(orig).splitlines()[0] if str(orig) else ""
    name = type(orig).__name__
    # Driver messages about connections name no secrets; keep them short anyway.
    return f"{name}: {first[:200]}" if first else name
