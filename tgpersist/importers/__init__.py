"""Bringing sessions made by other clients into a store: `.session` files and session strings.

`read_session_file` detects whether Telethon or Pyrogram/Kurigram/Pyrofork wrote a file and reads it
into a `SessionSnapshot`; `import_session_file` / `import_session_string` store one under a name in a
single transaction, so a failed import leaves the database as it was.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tgpersist import session_strings
from tgpersist.importers import grammers, pyrogram, telethon
from tgpersist.importers.detect import FileFormat, detect
from tgpersist.importers.snapshot import SessionSnapshot
from tgpersist.importers.writer import ImportResult, Progress, SessionExists, write_snapshot
from tgpersist.session_strings import StringFormat
from tgpersist.store import Store
from tgpersist.validation import check_name

__all__ = [
    "FileFormat",
    "ImportResult",
    "Progress",
    "SessionExists",
    "SessionSnapshot",
    "detect",
    "import_session_file",
    "import_session_string",
    "read_session_file",
    "snapshot_of_string",
    "write_snapshot",
]


def read_session_file(path: str | Path, name: str) -> SessionSnapshot:
    """Everything the Telethon, Pyrogram-family or grammers session file at `path` holds, named `name`."""
    check_name("name", name)
    found = detect(path)
    if found is FileFormat.TELETHON:
        return telethon.read(path, name)
    if found is FileFormat.GRAMMERS:
        return grammers.read(path, name)
    return pyrogram.read(path, name)


def snapshot_of_string(text: str, name: str, format: StringFormat | str | None = None) -> SessionSnapshot:
    """A session string as a snapshot (a session only: strings carry no peers or update state)."""
    check_name("name", name)
    decoded = session_strings.decode(text, name=name, format=format)
    notes = tuple(f"the string does not carry {field}" for field in decoded.missing)
    return SessionSnapshot(
        session=decoded.session,
        source=f"{decoded.format.value} string",
        filled_from_dc_table=decoded.filled_from_dc_table,
        notes=notes,
    )


async def import_session_file(
    store: Store,
    path: str | Path,
    name: str,
    *,
    replace: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Read the session file at `path` and store it as `name` in one transaction.

    An existing session `name` raises `SessionExists` unless `replace=True` (it is then deleted, with
    everything scoped to it, in the same transaction). `progress(done, total)` follows the peers.
    """
    snapshot = await asyncio.to_thread(read_session_file, path, name)
    return await write_snapshot(store, snapshot, replace=replace, progress=progress)


async def import_session_string(
    store: Store,
    text: str,
    name: str,
    *,
    format: StringFormat | str | None = None,
    replace: bool = False,
) -> ImportResult:
    """Decode a Telethon or Pyrogram session string and store it as `name` (see `import_session_file`)."""
    return await write_snapshot(store, snapshot_of_string(text, name, format), replace=replace)
