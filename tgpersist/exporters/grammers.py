"""Writing a snapshot as a grammers `SqliteSession` file (schema 1), which grammers opens as its own.

Every stored DC key becomes a `dc_option` row (a session without per-DC keys gives its home DC's, from
the session row); an address without IPv6 gets the IPv4-compatible IPv6 address grammers derives itself.
Peers keep grammers' subtype bits (self, bot, megagroup, broadcast); users and channels without an
access hash are kept, as grammers does.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from pathlib import Path

from tgpersist import session_strings
from tgpersist.domain import DcAuth, Peer, PeerKind, PeerType
from tgpersist.errors import InvalidArgument
from tgpersist.exporters.files import write_sqlite_file
from tgpersist.exporters.result import ExportResult
from tgpersist.importers.grammers import BOT, BROADCAST, MEGAGROUP, SELF
from tgpersist.importers.snapshot import SessionSnapshot
from tgpersist.session_strings import StringFormat

#: grammers' own table definitions (its `_migrate_v0_to_v1`).
TABLES = (
    "dc_home (dc_id INTEGER NOT NULL, PRIMARY KEY(dc_id))",
    "dc_option (dc_id INTEGER NOT NULL, ipv4 TEXT NOT NULL, ipv6 TEXT NOT NULL, auth_key BLOB,"
    " PRIMARY KEY (dc_id))",
    "peer_info (peer_id INTEGER NOT NULL, hash INTEGER, subtype INTEGER, PRIMARY KEY (peer_id))",
    "update_state (pts INTEGER NOT NULL, qts INTEGER NOT NULL, date INTEGER NOT NULL, seq INTEGER NOT NULL)",
    "channel_state (peer_id INTEGER NOT NULL, pts INTEGER NOT NULL, PRIMARY KEY (peer_id))",
)
_CHANNEL_BITS = {PeerType.CHANNEL: BROADCAST, PeerType.SUPERGROUP: MEGAGROUP, PeerType.FORUM: MEGAGROUP}


def _addresses(entry: DcAuth) -> tuple[str, str]:
    port = entry.port if entry.port is not None else 443
    ipv4 = entry.ipv4 or "0.0.0.0"
    ipv6 = entry.ipv6 or str(ipaddress.IPv6Address(int(ipaddress.IPv4Address(ipv4))))
    return f"{ipv4}:{port}", f"[{ipv6}]:{port}"


def _peer_row(peer: Peer, self_id: int | None) -> tuple[int, int | None, int | None]:
    if peer.type.kind is PeerKind.USER:
        bits = (BOT if peer.type is PeerType.BOT else 0) | (SELF if peer.id == self_id else 0)
        return peer.dialog_id, peer.access_hash, bits or None
    if peer.type.kind is PeerKind.CHAT:
        return peer.dialog_id, None, None
    return peer.dialog_id, peer.access_hash, _CHANNEL_BITS.get(peer.type)


def write(snapshot: SessionSnapshot, path: str | Path, *, overwrite: bool = False) -> ExportResult:
    """Create the grammers session file `path` from `snapshot`."""
    completed = session_strings.complete(snapshot.session, StringFormat.TELETHON)  # fills address, port
    session = completed.session
    if session.dc_id is None or session.auth_key is None:
        raise InvalidArgument("auth_key", "is unknown, and a grammers session file needs the home DC's key")
    dcs = {entry.dc_id: entry for entry in snapshot.dc_auth if not entry.media_only}
    dcs.setdefault(
        session.dc_id,
        DcAuth(session.dc_id, auth_key=session.auth_key, ipv4=session.server_address, port=session.port),
    )
    peers = [_peer_row(peer, session.user_id) for peer in snapshot.peers]

    def build(conn: sqlite3.Connection) -> None:
        for table in TABLES:
            conn.execute(f"CREATE TABLE {table}")
        conn.execute("PRAGMA user_version=1")
        conn.execute("INSERT INTO dc_home VALUES (?)", (session.dc_id,))
        conn.executemany(
            "INSERT INTO dc_option VALUES (?, ?, ?, ?)",
            [(dc_id, *_addresses(entry), entry.auth_key) for dc_id, entry in sorted(dcs.items())],
        )
        conn.executemany("INSERT INTO peer_info VALUES (?, ?, ?)", peers)
        state = snapshot.update_state
        if state is not None:
            conn.execute(
                "INSERT INTO update_state VALUES (?, ?, ?, ?)", (state.pts, state.qts, state.date, state.seq)
            )
        conn.executemany(
            "INSERT INTO channel_state VALUES (?, ?)", [(c.channel_id, c.pts) for c in snapshot.channels]
        )

    written = write_sqlite_file(path, build, overwrite=overwrite)
    return ExportResult(
        path=written,
        format="grammers",
        peers=len(peers),
        channels=len(snapshot.channels),
        update_state=snapshot.update_state is not None,
        filled_from_dc_table=completed.filled_from_dc_table,
    )
