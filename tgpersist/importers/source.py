"""Reading a foreign SQLite file safely: only a regular file, opened without blocking, read whole into
memory and queried there, so a FIFO cannot hang us, a file changing meanwhile cannot tear the read,
and SQLite never writes beside it (no -journal, -wal or -shm of ours next to someone else's file).

Every problem is `UnsupportedSessionFile` naming the path and what is wrong. Importers of any client
call `read_sqlite_snapshot`; `open_regular_file` serves those that read other formats.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from tgpersist.errors import InvalidArgument, UnsupportedSessionFile

SQLITE_MAGIC = b"SQLite format 3\x00"
#: Larger files are refused: the whole file is held in memory while it is read.
MAX_FILE_BYTES = 1 << 30
#: Bytes 18 and 19 of an SQLite header: the file format versions, 2 meaning WAL mode.
_WAL_VERSIONS = slice(18, 20)

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def open_regular_file(path: str | Path) -> int:
    """A read-only descriptor of the regular file at `path` (caller closes it); never blocks on a FIFO
    or device: it is opened with O_NONBLOCK and checked with fstat before anything is read."""
    if not isinstance(path, str | os.PathLike) or isinstance(os.fspath(path), bytes):
        raise InvalidArgument("path", f"expected a file path, got {type(path).__name__}")
    if "\x00" in os.fspath(path):
        raise InvalidArgument("path", "contains a NUL character")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise UnsupportedSessionFile(f"{path}: no such file") from None
    except OSError as error:
        raise UnsupportedSessionFile(f"{path}: cannot be opened ({error.strerror or error})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise UnsupportedSessionFile(f"{path}: is {kind}, not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular_file(path: str | Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The whole content of the regular file at `path`, at most `limit` bytes."""
    fd = open_regular_file(path)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise UnsupportedSessionFile(f"{path}: is {size} bytes, more than the {limit} bytes allowed")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > limit:
                raise UnsupportedSessionFile(f"{path}: grew past the {limit} bytes allowed while read")
            chunks.append(chunk)
    except OSError as error:
        raise UnsupportedSessionFile(f"{path}: cannot be read ({error.strerror or error})") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_sqlite_snapshot(path: str | Path) -> sqlite3.Connection:
    """An in-memory, query-only SQLite database holding what the file at `path` holds right now.

    A WAL-mode file is read as it stands once checkpointed; one whose -wal file still holds writes is
    refused (its own client, or `sqlite3 FILE 'PRAGMA wal_checkpoint'`, folds them in first).
    """
    data = bytearray(read_regular_file(path))
    if not data:
        raise UnsupportedSessionFile(f"{path}: the file is empty")
    if not data.startswith(SQLITE_MAGIC):
        raise UnsupportedSessionFile(f"{path}: not an SQLite database")
    if data[_WAL_VERSIONS] == b"\x02\x02":
        if _has_content(f"{path}-wal"):
            raise UnsupportedSessionFile(
                f"{path}: its -wal file holds writes not yet checkpointed (open it with its client once)"
            )
        data[_WAL_VERSIONS] = b"\x01\x01"  # the same pages, read without a WAL
    conn = sqlite3.connect(":memory:")
    try:
        conn.deserialize(bytes(data))
        conn.execute("PRAGMA query_only = ON")
    except sqlite3.Error as error:
        conn.close()
        raise UnsupportedSessionFile(f"{path}: not a readable SQLite database ({error})") from None
    return conn


def _has_content(path: str) -> bool:
    try:
        return os.stat(path).st_size > 0
    except OSError:
        return False
