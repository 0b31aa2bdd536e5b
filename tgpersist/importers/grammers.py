"""Reading a grammers `SqliteSession` file (schema 1: `PRAGMA user_version = 1`) into a `SessionSnapshot`.

The layout: `dc_home(dc_id)`, `dc_option(dc_id, ipv4 "ip:port", ipv6 "[ip]:port", auth_key)`,
`peer_info(peer_id` (a Bot API dialog id)`, hash, subtype)` with grammers' subtype bits (1 self,
2 bot, 4 megagroup, 8 broadcast, 12 gigagroup), `update_state(pts, qts, date, seq)` and
`channel_state(peer_id` (a bare channel id)`, pts)`. Every DC option becomes a `DcAuth`; the home DC's
key and address fill the session row; the peer flagged self gives the session's user id.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tgpersist.domain import ChannelState, DcAuth, Peer, PeerKind, PeerType, UpdateState
from tgpersist.errors import UnsupportedSessionFile
from tgpersist.importers import detect
from tgpersist.importers.rows import build, make_peer, make_session, read_file, split_dialog_id
from tgpersist.importers.snapshot import SessionSnapshot

#: grammers' `PeerSubtype` bits.
SELF, BOT, MEGAGROUP, BROADCAST, GIGAGROUP = 1, 2, 4, 8, 12
DEFAULT_DC = 2
TABLES = frozenset({"dc_home", "dc_option", "peer_info", "update_state", "channel_state"})


def read(path: str | Path, name: str) -> SessionSnapshot:
    """The DCs, peers and update state of the grammers session file at `path`, stored as `name`."""
    return read_file(path, name, _read)


def split_address(path: str | Path, where: str, address: Any) -> tuple[str, int]:
    """("1.2.3.4", 443) of "1.2.3.4:443", ("2001:db8::1", 443) of "[2001:db8::1]:443"."""
    host, colon, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
    if not colon or not port.isdigit() or not host:
        raise UnsupportedSessionFile(f"{path}: {where}: {address!r} is not an address with a port")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _read(conn: sqlite3.Connection, path: str | Path, name: str) -> SessionSnapshot:
    schema = detect.read_schema(conn, path)
    if detect.format_of(schema) is not detect.FileFormat.GRAMMERS:
        raise detect.unknown_schema(path, schema)
    detect.require_columns(path, schema, "dc_option", {"dc_id", "ipv4", "ipv6", "auth_key"})
    detect.require_columns(path, schema, "peer_info", {"peer_id", "hash", "subtype"})
    home_row = conn.execute("SELECT dc_id FROM dc_home LIMIT 1").fetchone()
    home = home_row[0] if home_row is not None else DEFAULT_DC
    dcs: dict[Any, DcAuth] = {}
    for dc_id, ipv4, ipv6, auth_key in conn.execute("SELECT dc_id, ipv4, ipv6, auth_key FROM dc_option"):
        where = f"dc_option row {dc_id}"
        host4, port = split_address(path, where, ipv4)
        host6, _ = split_address(path, where, ipv6)
        dcs[dc_id] = build(
            path, where, DcAuth, dc_id=dc_id, auth_key=auth_key, ipv4=host4, ipv6=host6, port=port
        )
    home_dc = dcs.get(home)
    if home_dc is None or home_dc.auth_key is None:
        raise UnsupportedSessionFile(f"{path}: the session is not logged in (no auth key for home DC {home})")
    peers, self_user = _peers(conn, path)
    session = make_session(
        path,
        name=name,
        dc_id=home,
        auth_key=home_dc.auth_key,
        server_address=home_dc.ipv4,
        port=home_dc.port,
        user_id=self_user.id if self_user is not None else None,
        is_bot=self_user.type is PeerType.BOT if self_user is not None else None,
    )
    state_row = conn.execute("SELECT pts, qts, date, seq FROM update_state LIMIT 1").fetchone()
    state = None
    if state_row is not None:
        pts, qts, date, seq = state_row
        state = build(path, "update_state", UpdateState, pts=pts, qts=qts, date=date, seq=seq)
    channels = [
        build(path, f"channel_state row {channel_id}", ChannelState, channel_id=channel_id, pts=pts)
        for channel_id, pts in conn.execute("SELECT peer_id, pts FROM channel_state ORDER BY peer_id")
    ]
    notes = () if self_user is not None else ("the file names no self user: the session has no user id",)
    return SessionSnapshot(
        session=session,
        source="grammers file (schema 1)",
        peers=tuple(peers),
        update_state=state,
        channels=tuple(channels),
        dc_auth=tuple(dcs.values()),
        notes=notes,
    )


def _peers(conn: sqlite3.Connection, path: str | Path) -> tuple[list[Peer], Peer | None]:
    peers: list[Peer] = []
    self_user: Peer | None = None
    for dialog_id, access_hash, subtype in conn.execute(
        "SELECT peer_id, hash, subtype FROM peer_info ORDER BY peer_id"
    ):
        where = f"peer_info row {dialog_id}"
        bare, kind = split_dialog_id(path, where, dialog_id)
        bits = subtype if isinstance(subtype, int) else 0
        if kind is PeerKind.USER:
            peer_type = PeerType.BOT if bits & BOT else PeerType.USER
        elif kind is PeerKind.CHAT:
            peer_type, access_hash = PeerType.CHAT, None
        else:
            peer_type = PeerType.CHANNEL if bits == BROADCAST else PeerType.SUPERGROUP
            peer_type = PeerType.CHANNEL if bits == 0 else peer_type
        peer = make_peer(path, where, id=bare, type=peer_type, access_hash=access_hash)
        peers.append(peer)
        if kind is PeerKind.USER and bits & SELF and self_user is None:
            self_user = peer
    return peers, self_user
