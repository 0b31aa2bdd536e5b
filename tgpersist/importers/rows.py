"""Turning loosely typed SQLite values of foreign session files into validated domain objects.

SQLite stores whatever it is given, so every value is checked by the domain types; a failed check
becomes `UnsupportedSessionFile` naming the file, the table and the row (never a secret).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tgpersist.domain import Peer, PeerKind, PeerType, Session
from tgpersist.domain.peer import from_dialog_id
from tgpersist.errors import InvalidArgument, UnsupportedSessionFile
from tgpersist.importers.detect import UNREADABLE, open_readonly, unreadable

T = TypeVar("T")


def build(path: str | Path, where: str, factory: Callable[..., T], **fields: Any) -> T:
    """`factory(**fields)`, with a validation failure reported as a bad row of the file."""
    try:
        return factory(**fields)
    except InvalidArgument as error:
        raise UnsupportedSessionFile(f"{path}: {where}: {error}") from None


def number(value: Any) -> Any:
    """Whole-number REALs (Telethon writes `datetime.timestamp()`) as ints; anything else unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def truncated(value: Any) -> Any:
    """A finite REAL cut to an int (a timestamp with a fraction); anything else (Infinity, NaN, text)
    unchanged, for validation to reject."""
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return value


def text(value: Any) -> str | None:
    """A text column that SQLite may have stored as a number (phone numbers in an INTEGER column)."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value  # type: ignore[no-any-return]  # a non-string is left for validation to reject


def split_dialog_id(path: str | Path, where: str, dialog_id: Any) -> tuple[int, PeerKind]:
    try:
        return from_dialog_id(dialog_id)
    except InvalidArgument as error:
        raise UnsupportedSessionFile(f"{path}: {where}: {error}") from None


def check_access_hash(path: str | Path, where: str, peer_type: PeerType, access_hash: Any) -> None:
    """Users and channels cannot be used without an access hash; basic chats have none."""
    if access_hash is None and peer_type.kind is not PeerKind.CHAT:
        raise UnsupportedSessionFile(
            f"{path}: {where}: access hash is NULL, which a {peer_type.value} cannot be without"
        )


def make_peer(path: str | Path, where: str, **fields: Any) -> Peer:
    return build(path, where, Peer, **fields)


def make_session(path: str | Path, **fields: Any) -> Session:
    return build(path, "sessions", Session, **fields)


@contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Report errors met while reading (a damaged or odd file) as `UnsupportedSessionFile`."""
    try:
        yield
    except UNREADABLE as error:
        if isinstance(error, InvalidArgument):
            raise UnsupportedSessionFile(f"{path}: {error}") from None
        raise unreadable(path, error) from None


def read_file(path: str | Path, name: str, parse: Callable[[sqlite3.Connection, str | Path, str], T]) -> T:
    """Open `path` read-only and `parse` it, SQLite errors reported as `UnsupportedSessionFile`."""
    conn = open_readonly(path)
    try:
        with reading(path):
            return parse(conn, path, name)
    finally:
        conn.close()
