"""Which client wrote a `.session` file: Telethon, the Pyrogram family or grammers, told apart by schema.

Files are opened read-only; anything that is not an SQLite database with one of the known layouts
raises `UnsupportedSessionFile` naming the file and the reason.
"""

from __future__ import annotations

import enum
import sqlite3
from pathlib import Path

from tgpersist.errors import UnsupportedSessionFile

SQLITE_MAGIC = b"SQLite format 3\x00"

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
    """A read-only connection to an existing SQLite file (checked by its header first)."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            header = handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        raise UnsupportedSessionFile(f"{file}: no such file") from None
    except IsADirectoryError:
        raise UnsupportedSessionFile(f"{file}: is a directory") from None
    except OSError as error:
        raise UnsupportedSessionFile(f"{file}: cannot be read ({error.strerror or error})") from None
    if not header:
        raise UnsupportedSessionFile(f"{file}: the file is empty")
    if header != SQLITE_MAGIC:
        raise UnsupportedSessionFile(f"{file}: not an SQLite database")
    try:
        return sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise UnsupportedSessionFile(f"{file}: cannot be opened ({error})") from None


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
    except sqlite3.Error as error:
        raise UnsupportedSessionFile(f"{path}: not a readable SQLite database ({error})") from None


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
