"""Reading a Pyrogram, Kurigram or Pyrofork `.session` file into a `SessionSnapshot`.

The layouts found in the wild differ by schema version and fork, so columns are looked up rather
than assumed: `sessions` gained `api_id` in version 3 and `server_address`/`port` in Kurigram's 7
(before that the address comes from the DC table, as Kurigram's own upgrade does); usernames live in
a `peers.username` column (Pyrogram 1.x/2.0, Pyrofork), a Kurigram `usernames(id, username)` table, or
a Pyrofork `usernames(id = username, peer_id)` table; `update_state` (id 0: the account, a marked
channel id: that channel) exists from Kurigram 5 and in Pyrofork. Peers are keyed by marked id.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

from tgpersist import dc_table
from tgpersist.domain import ChannelState, Peer, PeerKind, PeerType, UpdateState
from tgpersist.errors import InvalidArgument, UnsupportedSessionFile
from tgpersist.importers import detect
from tgpersist.importers.rows import (
    build,
    check_access_hash,
    make_peer,
    make_session,
    read_file,
    split_dialog_id,
    text,
)
from tgpersist.importers.snapshot import SessionSnapshot

#: Pyrogram's peer type strings and ours ("group" is a basic chat).
TYPES: dict[str, PeerType] = {
    "user": PeerType.USER,
    "bot": PeerType.BOT,
    "group": PeerType.CHAT,
    "channel": PeerType.CHANNEL,
    "supergroup": PeerType.SUPERGROUP,
    "forum": PeerType.FORUM,
    "direct": PeerType.DIRECT,
    "community": PeerType.COMMUNITY,
}

#: Before version 2 peer ids had another meaning; Pyrogram's upgrade deletes them, and so do we.
FIRST_TRUSTED_PEERS = 2


def read(path: str | Path, name: str) -> SessionSnapshot:
    """The session, peers and update state of the Pyrogram-family file at `path`, stored as `name`."""
    return read_file(path, name, _read)


def _read(conn: sqlite3.Connection, path: str | Path, name: str) -> SessionSnapshot:
    schema = detect.read_schema(conn, path)
    if detect.format_of(schema) is not detect.FileFormat.PYROGRAM:
        raise detect.unknown_schema(path, schema)
    version = conn.execute("SELECT number FROM version").fetchone()
    if version is None or not isinstance(version[0], int):
        raise UnsupportedSessionFile(f"{path}: the version table holds no schema version")
    detect.require_columns(path, schema, "sessions", {"dc_id", "test_mode", "auth_key", "user_id", "is_bot"})
    detect.require_columns(path, schema, "peers", {"id", "access_hash", "type"})
    notes: list[str] = []

    peers: list[Peer] = []
    if version[0] >= FIRST_TRUSTED_PEERS:
        peers = _peers(conn, path, schema)
    else:
        notes.append(f"schema {version[0]} peers dropped, as Pyrogram does (old id format)")
    state, channels = _update_state(conn, path, schema, notes)

    columns = schema["sessions"]
    wanted = [
        "dc_id",
        "test_mode",
        "auth_key",
        "user_id",
        "is_bot",
        "api_id",
        "date",
        "server_address",
        "port",
    ]
    select = ", ".join(c if c in columns else "NULL" for c in wanted)
    row = conn.execute(f"SELECT {select} FROM sessions").fetchone()
    if row is None:
        raise UnsupportedSessionFile(f"{path}: the sessions table is empty")
    dc_id, test_mode, auth_key, user_id, is_bot, api_id, date, address, port = row
    if not auth_key or user_id is None:
        raise UnsupportedSessionFile(f"{path}: the session is not logged in (no auth key or user id)")
    test_mode = bool(test_mode)
    filled: tuple[str, ...] = ()
    if address is None or port is None:
        try:
            default_address, default_port = dc_table.address_of(dc_id, test_mode)
        except InvalidArgument as error:
            raise UnsupportedSessionFile(f"{path}: sessions: {error}") from None
        filled = tuple(f for f, v in (("server_address", address), ("port", port)) if v is None)
        address = address if address is not None else default_address
        port = port if port is not None else default_port
    session = make_session(
        path,
        name=name,
        dc_id=dc_id,
        api_id=api_id or None,
        test_mode=test_mode,
        auth_key=auth_key,
        user_id=user_id,
        is_bot=None if is_bot is None else bool(is_bot),
        date=date or None,
        server_address=address,
        port=port,
    )
    return SessionSnapshot(
        session=session,
        source=f"pyrogram file (schema {version[0]})",
        peers=tuple(peers),
        update_state=state,
        channels=tuple(channels),
        filled_from_dc_table=filled,
        notes=tuple(notes),
    )


def _peers(conn: sqlite3.Connection, path: str | Path, schema: detect.Schema) -> list[Peer]:
    columns = schema["peers"]
    usernames = _usernames(conn, path, schema)
    username = "username" if "username" in columns else "NULL"
    phone = "phone_number" if "phone_number" in columns else "NULL"
    # Oldest first, so that of two peers claiming one username the newest keeps it.
    order = "last_update_on, id" if "last_update_on" in columns else "id"
    peers: list[Peer] = []
    for marked_id, access_hash, type_name, primary, phone_number in conn.execute(
        f"SELECT id, access_hash, type, {username}, {phone} FROM peers ORDER BY {order}"
    ):
        where = f"peers row {marked_id}"
        peer_type = TYPES.get(type_name) if isinstance(type_name, str) else None
        if peer_type is None:
            raise UnsupportedSessionFile(f"{path}: {where}: unknown peer type {type_name!r}")
        bare, kind = split_dialog_id(path, where, marked_id)
        if kind is not peer_type.kind:
            raise UnsupportedSessionFile(f"{path}: {where}: a {type_name} id cannot be a {kind.value} id")
        check_access_hash(path, where, peer_type, access_hash)
        names = _unique([text(primary), *usernames.get(marked_id, ())])
        peers.append(
            make_peer(
                path,
                where,
                id=bare,
                type=peer_type,
                access_hash=access_hash,
                username=names[0] if names else None,
                usernames=tuple(names),
                phone_number=text(phone_number) if kind is PeerKind.USER else None,
            )
        )
    return peers


def _usernames(conn: sqlite3.Connection, path: str | Path, schema: detect.Schema) -> dict[Any, list[Any]]:
    """Marked peer id -> its usernames, in stored order, from whichever usernames table exists."""
    columns = schema.get("usernames")
    if columns is None:
        return {}
    if {"peer_id", "id"} <= columns:  # Pyrofork: the username is the key, `peer_id` the owner
        query = "SELECT peer_id, id FROM usernames ORDER BY rowid"
    elif {"id", "username"} <= columns:  # Kurigram
        query = "SELECT id, username FROM usernames ORDER BY rowid"
    else:
        raise UnsupportedSessionFile(
            f"{path}: unknown schema: usernames has columns {', '.join(sorted(columns))}"
        )
    found: dict[Any, list[Any]] = defaultdict(list)
    for peer_id, username in conn.execute(query):
        found[peer_id].append(text(username))
    return found


def _unique(names: list[Any]) -> list[Any]:
    """Drop empty and repeated usernames (ignoring case), keeping the first spelling."""
    seen: set[str] = set()
    kept: list[Any] = []
    for name in names:
        if name is None:
            continue
        key = name.lower() if isinstance(name, str) else name
        if key not in seen:
            seen.add(key)
            kept.append(name)
    return kept


def _update_state(
    conn: sqlite3.Connection, path: str | Path, schema: detect.Schema, notes: list[str]
) -> tuple[UpdateState | None, list[ChannelState]]:
    if "update_state" not in schema:
        return None, []
    detect.require_columns(path, schema, "update_state", {"id", "pts", "qts", "date", "seq"})
    state: UpdateState | None = None
    channels: list[ChannelState] = []
    for state_id, pts, qts, date, seq in conn.execute(
        "SELECT id, pts, qts, date, seq FROM update_state ORDER BY id"
    ):
        where = f"update_state row {state_id}"
        if state_id == 0:
            state = build(path, where, UpdateState, pts=pts or 0, qts=qts or 0, date=date or 0, seq=seq or 0)
            continue
        bare, kind = split_dialog_id(path, where, state_id)
        if kind is not PeerKind.CHANNEL:
            notes.append(f"{where} ignored: neither the account nor a channel")
        elif pts is None:
            notes.append(f"{where} ignored: it holds no pts")
        else:
            channels.append(build(path, where, ChannelState, channel_id=bare, pts=pts))
    return state, channels
