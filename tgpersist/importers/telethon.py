"""Reading a Telethon `.session` file (schema versions 1-8) into a `SessionSnapshot`.

Telethon keeps one `sessions` row (dc id, address, port, auth key, takeout id), one `entities` row per
peer keyed by marked id (hash, lower-cased username, phone, display name), its sent-file cache
(`sent_files`: media already uploaded, by MD5 digest and size), and `update_state` rows:
id 0 is the account, any other id a channel's bare id. Its own id it stores as the entity with id 0
whose hash is the user id. Like Telethon's own upgrade, entities of schema 5 and older are dropped
(their access hashes may be wrong).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tgpersist import dc_table
from tgpersist.domain import ChannelState, Peer, PeerKind, PeerType, UpdateState
from tgpersist.errors import UnsupportedSessionFile
from tgpersist.importers import detect
from tgpersist.importers.rows import (
    build,
    check_access_hash,
    make_peer,
    make_session,
    number,
    read_file,
    split_dialog_id,
    text,
    truncated,
)
from tgpersist.importers.snapshot import SessionSnapshot
from tgpersist.repositories.files import SentFile

#: Schema version from which Telethon trusts its stored access hashes.
FIRST_TRUSTED_ENTITIES = 6
#: Schema version from which `sent_files` has its current layout (Telethon drops older caches).
FIRST_CURRENT_SENT_FILES = 3

_TYPES = {PeerKind.USER: PeerType.USER, PeerKind.CHAT: PeerType.CHAT, PeerKind.CHANNEL: PeerType.CHANNEL}


def read(path: str | Path, name: str) -> SessionSnapshot:
    """The session, peers and update state of the Telethon file at `path`, to be stored as `name`."""
    return read_file(path, name, _read)


def _read(conn: sqlite3.Connection, path: str | Path, name: str) -> SessionSnapshot:
    schema = detect.read_schema(conn, path)
    if detect.format_of(schema) is not detect.FileFormat.TELETHON:
        raise detect.unknown_schema(path, schema)
    version = conn.execute("SELECT version FROM version").fetchone()
    if version is None or not isinstance(version[0], int):
        raise UnsupportedSessionFile(f"{path}: the version table holds no schema version")
    detect.require_columns(path, schema, "sessions", {"dc_id", "server_address", "port", "auth_key"})
    detect.require_columns(path, schema, "entities", {"id", "hash", "username", "phone", "name"})
    notes: list[str] = []

    user_id: int | None = None
    peers: list[Peer] = []
    if version[0] >= FIRST_TRUSTED_ENTITIES:
        user_id, peers = _entities(conn, path, schema)
    else:
        notes.append(f"schema {version[0]} entities dropped, as Telethon does (stale access hashes)")
    state, channels = _update_state(conn, path, schema)
    sent_files = _sent_files(conn, path, schema) if version[0] >= FIRST_CURRENT_SENT_FILES else []

    takeout = "takeout_id" if "takeout_id" in schema["sessions"] else "NULL"
    row = conn.execute(f"SELECT dc_id, server_address, port, auth_key, {takeout} FROM sessions").fetchone()
    if row is None:
        raise UnsupportedSessionFile(f"{path}: the sessions table is empty")
    dc_id, address, port, auth_key, takeout_id = row
    if not auth_key:
        raise UnsupportedSessionFile(f"{path}: the session holds no auth key (it never logged in)")
    known = dc_table.identify(address) if isinstance(address, str) else None
    test_mode = known is not None and known.test_mode
    session = make_session(
        path,
        name=name,
        dc_id=dc_id,
        server_address=address,
        port=port,
        auth_key=auth_key,
        takeout_id=takeout_id,
        user_id=user_id,
        test_mode=test_mode,
    )
    if user_id is None:
        notes.append("the file does not record the account's user id")
    return SessionSnapshot(
        session=session,
        source=f"telethon file (schema {version[0]})",
        peers=tuple(peers),
        update_state=state,
        channels=tuple(channels),
        sent_files=tuple(sent_files),
        filled_from_dc_table=("test_mode",) if test_mode else (),
        notes=tuple(notes),
    )


def _entities(
    conn: sqlite3.Connection, path: str | Path, schema: detect.Schema
) -> tuple[int | None, list[Peer]]:
    # Oldest first, so that of two peers claiming one username the newest keeps it (as Telethon does).
    order = "COALESCE(date, 0), id" if "date" in schema["entities"] else "id"
    user_id: int | None = None
    peers: list[Peer] = []
    for marked_id, access_hash, username, phone, display in conn.execute(
        f"SELECT id, hash, username, phone, name FROM entities ORDER BY {order}"
    ):
        if marked_id == 0:
            # Telethon's own id: the entity with id 0, whose hash is the user id.
            user_id = access_hash if isinstance(access_hash, int) and access_hash > 0 else None
            continue
        where = f"entities row {marked_id}"
        bare, kind = split_dialog_id(path, where, marked_id)
        peer_type = _TYPES[kind]
        check_access_hash(path, where, peer_type, access_hash)
        names = _names(peer_type, text(display))
        peers.append(
            make_peer(
                path,
                where,
                id=bare,
                type=peer_type,
                access_hash=access_hash,
                username=text(username),
                phone_number=text(phone) if kind is PeerKind.USER else None,
                **names,
            )
        )
    return user_id, peers


def _names(peer_type: PeerType, display: Any) -> dict[str, Any]:
    """Telethon keeps only a display name: a user's goes to first_name, a chat's to title."""
    if peer_type is PeerType.USER:
        return {"first_name": display}
    return {"title": display}


def _update_state(
    conn: sqlite3.Connection, path: str | Path, schema: detect.Schema
) -> tuple[UpdateState | None, list[ChannelState]]:
    if "update_state" not in schema:
        return None, []
    detect.require_columns(path, schema, "update_state", {"id", "pts", "qts", "date", "seq"})
    state: UpdateState | None = None
    channels: list[ChannelState] = []
    for entity_id, pts, qts, date, seq in conn.execute(
        "SELECT id, pts, qts, date, seq FROM update_state ORDER BY id"
    ):
        where = f"update_state row {entity_id}"
        if entity_id == 0:
            state = build(
                path,
                where,
                UpdateState,
                pts=number(pts) or 0,
                qts=number(qts) or 0,
                date=truncated(date) if date is not None else 0,
                seq=number(seq) or 0,
            )
        elif isinstance(entity_id, int) and entity_id > 0:
            channels.append(build(path, where, ChannelState, channel_id=entity_id, pts=number(pts)))
        else:
            raise UnsupportedSessionFile(f"{path}: {where}: not the account (0) nor a channel id")
    return state, channels


def _sent_files(conn: sqlite3.Connection, path: str | Path, schema: detect.Schema) -> list[SentFile]:
    if "sent_files" not in schema:
        return []
    detect.require_columns(path, schema, "sent_files", {"md5_digest", "file_size", "type", "id", "hash"})
    return [
        build(
            path,
            f"sent_files row {number}",
            SentFile,
            md5_digest=digest,
            file_size=size,
            type=kind,
            id=file_id,
            access_hash=access_hash,
        )
        for number, (digest, size, kind, file_id, access_hash) in enumerate(
            conn.execute("SELECT md5_digest, file_size, type, id, hash FROM sent_files ORDER BY rowid"), 1
        )
    ]
