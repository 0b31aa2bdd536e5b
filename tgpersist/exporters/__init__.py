"""Taking sessions out of a store again: as Telethon, Pyrogram/Kurigram or grammers session files.

`export_session_file` reads the account in one read transaction and writes a file the named client
opens as its own; `write_session_file` does the same for a `SessionSnapshot` already in hand.
"""

from __future__ import annotations

from pathlib import Path

from tgpersist.errors import InvalidArgument
from tgpersist.exporters import grammers, pyrogram, telethon
from tgpersist.exporters.account import SessionNotFound, read_account
from tgpersist.exporters.result import ExportResult
from tgpersist.importers.snapshot import SessionSnapshot
from tgpersist.session_strings import StringFormat
from tgpersist.store import Store

__all__ = [
    "ExportResult",
    "SessionNotFound",
    "export_session_file",
    "read_account",
    "write_session_file",
]


def write_session_file(
    snapshot: SessionSnapshot, path: str | Path, format: StringFormat | str, *, overwrite: bool = False
) -> ExportResult:
    """Write `snapshot` as a `format` ("telethon", "pyrogram" or "grammers") session file at `path`."""
    if format == "grammers":
        return grammers.write(snapshot, path, overwrite=overwrite)
    try:
        chosen = StringFormat(format)
    except ValueError:
        raise InvalidArgument("format", f"{format!r} is not telethon, pyrogram or grammers") from None
    writer = telethon.write if chosen is StringFormat.TELETHON else pyrogram.write
    return writer(snapshot, path, overwrite=overwrite)


async def export_session_file(
    store: Store, name: str, path: str | Path, format: StringFormat | str, *, overwrite: bool = False
) -> ExportResult:
    """Write the stored session `name` as a `format` session file at `path` (refusing to overwrite)."""
    snapshot = await read_account(store, name)
    return write_session_file(snapshot, path, format, overwrite=overwrite)
