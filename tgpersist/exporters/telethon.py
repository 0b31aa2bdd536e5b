"""Writing a snapshot as a Telethon `.session` file (schema 8, as `telethon.sessions.SQLiteSession` makes).

Telethon keeps one username per entity (lower-cased), the phone as digits, a display name, its own
user id as the entity with id 0 whose hash is that id, and its sent-file cache. Users and channels
without an access hash are left out: Telethon cannot use them (and its schema forbids a NULL hash).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from tgpersist import session_strings
from tgpersist.domain import Peer, PeerKind, PeerType
from tgpersist.errors import InvalidArgument
from tgpersist.exporters.files import write_sqlite_file
from tgpersist.exporters.result import ExportResult
from tgpersist.importers.snapshot import SessionSnapshot
from tgpersist.session_strings import StringFormat
from tgpersist.validation import phone_key

VERSION = 8

#: Telethon's own table definitions, verbatim.
TABLES = (
    "version (version integer primary key)",
    """sessions (
                    dc_id integer primary key,
                    server_address text,
                    port integer,
                    auth_key blob,
                    takeout_id integer,
                    tmp_auth_key blob
                )""",
    """entities (
                    id integer primary key,
                    hash integer not null,
                    username text,
                    phone integer,
                    name text,
                    date integer
                )""",
    """sent_files (
                    md5_digest blob,
                    file_size integer,
                    type integer,
                    id integer,
                    hash integer,
                    primary key(md5_digest, file_size, type)
                )""",
    """update_state (
                    id integer primary key,
                    pts integer,
                    qts integer,
                    date integer,
                    seq integer
                )""",
)


def write(snapshot: SessionSnapshot, path: str | Path, *, overwrite: bool = False) -> ExportResult:
    """Create the Telethon session file `path` from `snapshot`."""
    completed = session_strings.complete(snapshot.session, StringFormat.TELETHON)
    session = completed.session
    if session.dc_id is None:
        raise InvalidArgument("dc_id", "is unknown, and a Telethon session file needs it")
    if session.auth_key is None:
        raise InvalidArgument("auth_key", "is unknown: a Telethon session file without one is logged out")
    now = int(time.time())
    entities: list[tuple[Any, ...]] = []
    skipped = 0
    for peer in snapshot.peers:
        row = _entity(peer, now)
        if row is None:
            skipped += 1
        else:
            entities.append(row)
    if session.user_id is not None:
        entities.append((0, session.user_id, None, None, None, now))  # Telethon's "self" entity
    states: list[tuple[Any, ...]] = []
    date = 0
    if snapshot.update_state is not None:
        state = snapshot.update_state
        date = state.date
        states.append((0, state.pts, state.qts, state.date, state.seq))
    states.extend((c.channel_id, c.pts, 0, date, 0) for c in snapshot.channels)
    files = [(f.md5_digest, f.file_size, f.type, f.id, f.access_hash) for f in snapshot.sent_files]

    def build(conn: sqlite3.Connection) -> None:
        for definition in TABLES:
            conn.execute(f"create table {definition}")
        conn.execute("insert into version values (?)", (VERSION,))
        conn.execute(
            "insert into sessions values (?,?,?,?,?,?)",
            (session.dc_id, session.server_address, session.port, session.auth_key, session.takeout_id, b""),
        )
        conn.executemany("insert or replace into entities values (?,?,?,?,?,?)", entities)
        conn.executemany("insert or replace into update_state values (?,?,?,?,?)", states)
        conn.executemany("insert or replace into sent_files values (?,?,?,?,?)", files)

    written = write_sqlite_file(path, build, overwrite=overwrite)
    return ExportResult(
        path=written,
        format=StringFormat.TELETHON.value,
        peers=len(snapshot.peers) - skipped,
        skipped=skipped,
        channels=len(snapshot.channels),
        update_state=snapshot.update_state is not None,
        sent_files=len(files),
        filled_from_dc_table=completed.filled_from_dc_table,
    )


def _entity(peer: Peer, now: int) -> tuple[Any, ...] | None:
    if peer.access_hash is None and peer.type.kind is not PeerKind.CHAT:
        return None
    username = peer.username or (peer.usernames[0] if peer.usernames else None)
    phone = phone_key(peer.phone_number) if peer.phone_number else None
    date = int(peer.updated_at.timestamp()) if peer.updated_at else now
    return (
        peer.dialog_id,
        peer.access_hash or 0,
        username.lower() if username else None,
        phone or None,
        display_name(peer),
        date,
    )


def display_name(peer: Peer) -> str | None:
    """What Telethon's `utils.get_display_name` gives: "first last" for users, the title otherwise."""
    if peer.type in (PeerType.USER, PeerType.BOT):
        return " ".join(n for n in (peer.first_name, peer.last_name) if n) or None
    return peer.title or None
