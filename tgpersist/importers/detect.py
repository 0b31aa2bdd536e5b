"""Which client wrote a `.session` file: Telethon, the Pyrogram family or grammers, told apart by schema.

Files are opened read-only; anything that is not an SQLite database with one of the known layouts
raises `UnsupportedSessionFile` naming the file and the reason.
"""

from __future__ import annotations

import enum
import sqlite3
from pathlib import Path

from tgpersist.errors import UnsupportedSessionFile
from tgpersist.importers.source import SQLITE_MAGIC, read_sqlite_snapshot

__all__ = ["SQLITE_MAGIC", "FileFormat", "detect", "open_readonly"]

#: Tables each client always has (Telethon: `version` holds a `version` column, Pyrogram: `number`).
TELETHON_TABLES = frozenset({"version", "sessions", "entities"})
PYROGRAM_TABLES = frozenset({"version", "sessions", "peers"})
GRAMMERS_TABLES = frozenset({"dc_home", "dc_option", "peer_info", "update_state", "channel_state"})


class FileFormat(enum.Enum):
    TELETHON = "telethon"
    PYROGRAM = "pyrogram"
    GRAMMERS = "grammers"


Schema = dict[str, frozenset[str]]


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """A query-only, in-memory copy of the SQLite file at `path` (see `source.read_sqlite_snapshot`)."""
    return read_sqlite_snapshot(path)


def schema_of(conn: sqlite3.Connection) -> Schema:
    """Table name -> its column names."""
    names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    schema: Schema = {}
    for name in names:
        quoted = '"' + name.replace('"', '""') + '"'
        schema[name] = frozenset(row[1] for row in conn.execute(f"PRAGMA table_info({quoted})"))
    return schema


def format_of(schema: Schema) -> FileFormat | None:
    tables = set(schema)
    if tables >= TELETHON_TABLES and "peers" not in tables and "version" in schema["version"]:
        return FileFormat.TELETHON
    if tables >= PYROGRAM_TABLES and "entities" not in tables and "number" in schema["version"]:
        return FileFormat.PYROGRAM
    if tables >= GRAMMERS_TABLES and "version" not in tables:
        return FileFormat.GRAMMERS
    return None


def detect(path: str | Path) -> FileFormat:
    """The client that wrote the session file at `path`."""
    conn = open_readonly(path)
    try:
        schema = read_schema(conn, path)
    finally:
        conn.close()
    found = format_of(schema)
    if found is None:
        raise unknown_schema(path, schema)
    return found


def read_schema(conn: sqlite3.Connection, path: str | Path) -> Schema:
    try:
        return schema_of(conn)
    except UNREADABLE as error:
        raise unreadable(path, error, "not a readable SQLite database") from None


#: What reading a damaged or hand-made file can raise: SQLite's errors, undecodable text, numbers
#: that do not fit, values of a type the layout does not allow.
UNREADABLE = (sqlite3.Error, UnicodeError, OverflowError, ValueError, TypeError)


def unreadable(
    path: str | Path, error: BaseException, what: str = "cannot be read"
) -> UnsupportedSessionFile:
    """`UnsupportedSessionFile` for an `UNREADABLE` error met reading `path`: its kind and first line."""
    text = str(error).splitlines()[0][:200] if str(error) else ""
    detail = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return UnsupportedSessionFile(f"{path}: {what} ({detail})")


def unknown_schema(path: str | Path, schema: Schema) -> UnsupportedSessionFile:
    tables = ", ".join(sorted(schema)) or "no tables"
    return UnsupportedSessionFile(
        f"{path}: not a Telethon, Pyrogram or grammers session file (unknown schema: {tables})"
    )


def require_columns(path: str | Path, schema: Schema, table: str, columns: set[str]) -> None:
    """Raise unless `table` exists with at least `columns`."""
    have = schema.get(table)
    if have is None:
        raise UnsupportedSessionFile(f"{path}: unknown schema: table {table!r} is missing")
    missing = columns - have
    if missing:
        raise UnsupportedSessionFile(
            f"{path}: unknown schema: table {table!r} lacks {', '.join(sorted(missing))}"
        )
