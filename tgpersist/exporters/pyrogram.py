"""Writing a snapshot as a Kurigram `.session` file (schema 7, as `pyrogram.storage.SQLiteStorage` makes).

Kurigram keys peers by marked id with a type string, keeps every username (lower-cased) in its own
table, and update states by id (0: the account, a marked channel id: that channel). It treats a
session without user id as logged out (and would replace its auth key), so one is required here.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from tgpersist import session_strings
from tgpersist.domain import Peer, PeerKind, PeerType, to_dialog_id
from tgpersist.errors import InvalidArgument
from tgpersist.exporters.files import write_sqlite_file
from tgpersist.exporters.result import ExportResult
from tgpersist.importers.pyrogram import TYPES
from tgpersist.importers.snapshot import SessionSnapshot
from tgpersist.session_strings import StringFormat
from tgpersist.validation import phone_key

VERSION = 7

#: Our peer types as Pyrogram's strings.
TYPE_NAMES: dict[PeerType, str] = {peer_type: name for name, peer_type in TYPES.items()}

#: Kurigram's schema, verbatim.
SCHEMA = """
CREATE TABLE sessions
(
    dc_id          INTEGER PRIMARY KEY,
    server_address TEXT,
    port           INTEGER,
    api_id         INTEGER,
    test_mode      INTEGER,
    auth_key       BLOB,
    date           INTEGER NOT NULL,
    user_id        INTEGER,
    is_bot         INTEGER
);

CREATE TABLE peers
(
    id             INTEGER PRIMARY KEY,
    access_hash    INTEGER,
    type           INTEGER NOT NULL,
    phone_number   TEXT,
    last_update_on INTEGER NOT NULL DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER))
);

CREATE TABLE usernames
(
    id       INTEGER,
    username TEXT,
    FOREIGN KEY (id) REFERENCES peers(id)
);

CREATE TABLE update_state
(
    id   INTEGER PRIMARY KEY,
    pts  INTEGER,
    qts  INTEGER,
    date INTEGER,
    seq  INTEGER
);

CREATE TABLE version
(
    number INTEGER PRIMARY KEY
);

CREATE INDEX idx_peers_id ON peers (id);
CREATE INDEX idx_peers_phone_number ON peers (phone_number);
CREATE INDEX idx_usernames_id ON usernames (id);
CREATE INDEX idx_usernames_username ON usernames (username);

CREATE TRIGGER trg_peers_last_update_on
    AFTER UPDATE
    ON peers
BEGIN
    UPDATE peers
    SET last_update_on = CAST(STRFTIME('%s', 'now') AS INTEGER)
    WHERE id = NEW.id;
END;
"""


def write(snapshot: SessionSnapshot, path: str | Path, *, overwrite: bool = False) -> ExportResult:
    """Create the Kurigram session file `path` from `snapshot`."""
    address = session_strings.complete(snapshot.session, StringFormat.TELETHON)  # fills address, port
    completed = session_strings.complete(address.session, StringFormat.PYROGRAM)  # assumes is_bot
    session = completed.session
    for field in ("dc_id", "auth_key"):
        if getattr(session, field) is None:
            raise InvalidArgument(field, "is unknown, and a Pyrogram session file needs it")
    if session.user_id is None:
        raise InvalidArgument(
            "user_id", "is unknown: Pyrogram treats a session without it as logged out and drops its key"
        )
    now = int(time.time())
    peers: list[tuple[Any, ...]] = []
    usernames: list[tuple[int, str]] = []
    skipped = 0
    for peer in snapshot.peers:
        row = _peer(peer, now)
        if row is None:
            skipped += 1
            continue
        peers.append(row)
        usernames.extend((peer.dialog_id, name.lower()) for name in peer.usernames)
    states: list[tuple[Any, ...]] = []
    if snapshot.update_state is not None:
        state = snapshot.update_state
        states.append((0, state.pts, state.qts, state.date, state.seq))
    states.extend(
        (to_dialog_id(c.channel_id, PeerKind.CHANNEL), c.pts, None, None, None) for c in snapshot.channels
    )

    def build(conn: sqlite3.Connection) -> None:
        conn.executescript(SCHEMA)
        conn.execute("INSERT INTO version VALUES (?)", (VERSION,))
        conn.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session.dc_id,
                session.server_address,
                session.port,
                session.api_id,
                session.test_mode,
                session.auth_key,
                session.date or 0,
                session.user_id,
                session.is_bot,
            ),
        )
        conn.executemany(
            "INSERT INTO peers (id, access_hash, type, phone_number, last_update_on) VALUES (?, ?, ?, ?, ?)",
            peers,
        )
        conn.executemany("INSERT INTO usernames (id, username) VALUES (?, ?)", usernames)
        conn.executemany("INSERT INTO update_state (id, pts, qts, date, seq) VALUES (?, ?, ?, ?, ?)", states)

    written = write_sqlite_file(path, build, overwrite=overwrite)
    return ExportResult(
        path=written,
        format=StringFormat.PYROGRAM.value,
        peers=len(peers),
        skipped=skipped,
        channels=len(snapshot.channels),
        update_state=snapshot.update_state is not None,
        filled_from_dc_table=address.filled_from_dc_table,
        assumed=completed.assumed,
    )


def _peer(peer: Peer, now: int) -> tuple[Any, ...] | None:
    is_chat = peer.type.kind is PeerKind.CHAT
    if peer.access_hash is None and not is_chat:
        return None
    phone = phone_key(peer.phone_number) if peer.phone_number else None
    updated = int(peer.updated_at.timestamp()) if peer.updated_at else now
    access_hash = 0 if is_chat and peer.access_hash is None else peer.access_hash
    return (peer.dialog_id, access_hash, TYPE_NAMES[peer.type], phone or None, updated)
