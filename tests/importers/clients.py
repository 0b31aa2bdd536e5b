"""Session files and strings made by Telethon and Kurigram themselves, and what they should import as.

Test-only use of the client libraries: every fixture here is produced by the client's own code
(`SQLiteSession.process_entities`, `Client.fetch_peers`, `SQLiteStorage`, `StringSession.save`...).
"""

from __future__ import annotations

import datetime
import sqlite3
from pathlib import Path
from typing import Any

from pyrogram import Client, raw
from pyrogram.storage.storage import UpdateState as PyroState
from telethon.crypto import AuthKey
from telethon.sessions import SQLiteSession
from telethon.tl import types as tl

from tgpersist import ChannelState, Peer, PeerType, SentFile, UpdateState

AUTH_KEY = bytes((i * 7 + 3) % 256 for i in range(256))
OTHER_KEY = bytes((i * 11 + 5) % 256 for i in range(256))
API_ID = 123456
API_HASH = "0123456789abcdef0123456789abcdef"
USER_ID = 5_000_000_001
STATE = UpdateState(pts=4321, qts=12, date=1_700_000_000, seq=77)
#: Telethon's sent-file cache: a document and a photo (type 0 and 1, as Telethon numbers them).
SENT_FILES = [
    SentFile(bytes(range(16)), 1_048_576, 0, 5_000_000_000_001, -77),
    SentFile(bytes(range(16, 32)), 2048, 1, 5_000_000_000_002, 2**63 - 1),
]
CHANNEL_PTS = 987


def _photo() -> Any:
    return tl.ChatPhotoEmpty()


def telethon_entities() -> list[Any]:
    """Real Telethon TL objects of every kind Telethon stores."""
    return [
        tl.User(
            101,
            access_hash=-(2**63),
            username="Alice",
            phone="15550101",
            first_name="Alice",
            last_name="Smith",
        ),
        tl.User(102, access_hash=2**63 - 1, bot=True, username="helper_bot", first_name="Helper"),
        tl.User(103, access_hash=5, first_name="Nameless"),
        tl.Chat(55, "Old group", _photo(), 3, None, 1),
        tl.Channel(1234, "News", _photo(), None, access_hash=99, username="NewsChan", broadcast=True),
        tl.Channel(1235, "Devs", _photo(), None, access_hash=-98, megagroup=True),
    ]


#: (id, type, access hash, usernames, phone) Telethon's file holds for `telethon_entities()`.
TELETHON_PEERS = [
    (55, PeerType.CHAT, 0, (), None),
    (101, PeerType.USER, -(2**63), ("alice",), "15550101"),
    (102, PeerType.USER, 2**63 - 1, ("helper_bot",), None),
    (103, PeerType.USER, 5, (), None),
    (1234, PeerType.CHANNEL, 99, ("newschan",), None),
    (1235, PeerType.CHANNEL, -98, (), None),
]


def make_telethon_file(
    path: Path,
    *,
    dc_id: int = 4,
    address: str = "149.154.167.91",
    port: int = 443,
    auth_key: bytes | None = AUTH_KEY,
    user_id: int | None = USER_ID,
    entities: list[Any] | None = None,
    state: UpdateState | None = STATE,
    channels: tuple[ChannelState, ...] = (ChannelState(1234, CHANNEL_PTS),),
    sent_files: list[SentFile] = SENT_FILES,
) -> Path:
    """A `.session` file written by Telethon's `SQLiteSession` (as a logged-in client leaves it)."""
    session = SQLiteSession(str(path))
    session.set_dc(dc_id, address, port)
    if auth_key is not None:
        session.auth_key = AuthKey(auth_key)
    if user_id is not None:  # what TelegramClient._save_states_and_entities does for "self"
        session.process_entities(tl.contacts.ResolvedPeer(None, [tl.InputPeerUser(0, user_id)], []))
    session.process_entities(telethon_entities() if entities is None else entities)
    if state is not None:
        date = datetime.datetime.fromtimestamp(state.date, tz=datetime.UTC)
        session.set_update_state(0, tl.updates.State(state.pts, state.qts, date, state.seq, unread_count=0))
    for channel in channels:
        now = datetime.datetime.now()
        session.set_update_state(channel.channel_id, tl.updates.State(channel.pts, 0, now, 0, unread_count=0))
    for file in sent_files:
        media = tl.InputDocument if file.type == 0 else tl.InputPhoto
        session.cache_file(file.md5_digest, file.file_size, media(file.id, file.access_hash, b""))
    session.save()
    session.close()
    return Path(session.filename)


def pyrogram_peers() -> list[Any]:
    """Real Kurigram raw TL objects of every kind Kurigram stores."""
    photo = raw.types.ChatPhotoEmpty()
    return [
        raw.types.User(id=101, access_hash=-(2**63), username="Alice", phone="15550101", first_name="Alice"),
        raw.types.User(
            id=102,
            access_hash=2**63 - 1,
            bot=True,
            usernames=[
                raw.types.Username(username="Helper_Bot", active=True),
                raw.types.Username(username="helper2", active=True),
            ],
        ),
        raw.types.Chat(id=55, title="Old group", photo=photo, participants_count=3, date=0, version=1),
        raw.types.Channel(
            id=1234, title="News", photo=photo, date=0, access_hash=99, broadcast=True, username="NewsChan"
        ),
        raw.types.Channel(id=1235, title="Devs", photo=photo, date=0, access_hash=-98, megagroup=True),
        raw.types.Channel(
            id=1236, title="Forum", photo=photo, date=0, access_hash=97, megagroup=True, forum=True
        ),
    ]


#: (id, type, access hash, usernames, phone) Kurigram's file holds for `pyrogram_peers()`.
PYROGRAM_PEERS = [
    (55, PeerType.CHAT, 0, (), None),
    (101, PeerType.USER, -(2**63), ("alice",), "15550101"),
    (102, PeerType.BOT, 2**63 - 1, ("helper_bot", "helper2"), None),
    (1234, PeerType.CHANNEL, 99, ("newschan",), None),
    (1235, PeerType.SUPERGROUP, -98, (), None),
    (1236, PeerType.FORUM, 97, (), None),
]


async def make_pyrogram_file(
    workdir: Path,
    name: str = "kurigram",
    *,
    dc_id: int = 4,
    test_mode: bool = False,
    address: str | None = None,
    port: int | None = None,
    auth_key: bytes = AUTH_KEY,
    user_id: int | None = USER_ID,
    is_bot: bool = False,
    peers: list[Any] | None = None,
    state: UpdateState | None = STATE,
    channels: tuple[ChannelState, ...] = (ChannelState(1234, CHANNEL_PTS),),
) -> Path:
    """A `.session` file written by Kurigram's `SQLiteStorage` through `Client.fetch_peers`."""
    client = Client(name, api_id=API_ID, api_hash=API_HASH, workdir=str(workdir), test_mode=test_mode)
    storage = client.storage
    await storage.open()
    await storage.dc_id(dc_id)
    if address is not None:
        await storage.server_address(address)
    if port is not None:
        await storage.port(port)
    await storage.api_id(API_ID)
    await storage.test_mode(test_mode)
    await storage.auth_key(auth_key)
    await storage.user_id(user_id)
    await storage.is_bot(is_bot)
    await client.fetch_peers(pyrogram_peers() if peers is None else peers)
    if state is not None:
        await storage.set_update_state(PyroState(0, state.pts, state.qts, state.date, state.seq))
    for channel in channels:
        await storage.set_update_state(
            PyroState(-1_000_000_000_000 - channel.channel_id, channel.pts, None, None, None)
        )
    await storage.save()
    await storage.close()
    return workdir / f"{name}.session"


def peer_facts(peers: list[Peer]) -> list[tuple[Any, ...]]:
    """(id, type, access hash, usernames, phone) of each peer, sorted by (id, type)."""
    return sorted(
        ((p.id, p.type, p.access_hash, p.usernames, p.phone_number) for p in peers),
        key=lambda fact: (fact[0], fact[1].value),
    )


def sqlite_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def telethon_at_schema(path: Path, version: int) -> Path:
    """Turn a current Telethon file into one of an older schema version, as older Telethons left it."""
    conn = sqlite3.connect(path)
    with conn:
        if version < 8:
            conn.execute("alter table sessions drop column tmp_auth_key")
        if version < 7:
            conn.execute("alter table entities drop column date")
        if version < 5:
            conn.execute("alter table sessions drop column takeout_id")
        if version < 4:
            conn.execute("drop table update_state")
        conn.execute("update version set version = ?", (version,))
    conn.close()
    return path


def edit(path: Path, *statements: str) -> Path:
    """Run SQL statements on a session file (to damage it in a specific way)."""
    conn = sqlite3.connect(path)
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()
    return path


#: Rows every old Pyrogram-family file below holds: (marked id, access hash, type, username, phone).
OLD_PYROGRAM_ROWS = [
    (101, -5, "user", "alice", "15550101"),
    (102, 6, "bot", "helper_bot", None),
    (-55, 0, "group", None, None),
    (-1000000001234, 99, "channel", "newschan", None),
    (-1000000001235, -98, "supergroup", None, None),
]
OLD_PYROGRAM_PEERS = [
    (55, PeerType.CHAT, 0, (), None),
    (101, PeerType.USER, -5, ("alice",), "15550101"),
    (102, PeerType.BOT, 6, ("helper_bot", "helper2"), None),
    (1234, PeerType.CHANNEL, 99, ("newschan",), None),
    (1235, PeerType.SUPERGROUP, -98, (), None),
]

_OLD_PEERS_TABLE = """CREATE TABLE peers (
    id INTEGER PRIMARY KEY, access_hash INTEGER, type INTEGER NOT NULL, username TEXT, phone_number TEXT,
    last_update_on INTEGER NOT NULL DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER)))"""
_UPDATE_STATE_TABLE = (
    "CREATE TABLE update_state (id INTEGER PRIMARY KEY, pts INTEGER, qts INTEGER, date INTEGER, seq INTEGER)"
)


def old_pyrogram_file(
    path: Path, version: int, *, fork: str = "kurigram", dc_id: int = 4, test_mode: bool = False
) -> Path:
    """A file as Pyrogram 1.x (version 1-2), Pyrogram 2.0 (3), Kurigram (4-6) or Pyrofork (4) wrote it.

    The schemas are those clients' own: `api_id` from version 3, Kurigram's `usernames(id, username)`
    from 4 and `update_state` from 5; Pyrofork's `usernames(id = username, peer_id)` and `update_state`.
    """
    api_id = "api_id INTEGER," if version >= 3 else ""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            f"CREATE TABLE sessions (dc_id INTEGER PRIMARY KEY, {api_id} test_mode INTEGER, auth_key BLOB,"
            " date INTEGER NOT NULL, user_id INTEGER, is_bot INTEGER)"
        )
        conn.execute(_OLD_PEERS_TABLE)
        conn.execute("CREATE TABLE version (number INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO version VALUES (?)", (version,))
        values = {
            "dc_id": dc_id,
            "test_mode": int(test_mode),
            "auth_key": AUTH_KEY,
            "date": 1_700_000_000,
            "user_id": USER_ID,
            "is_bot": 0,
        }
        if version >= 3:
            values["api_id"] = API_ID
        conn.execute(
            f"INSERT INTO sessions ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
            list(values.values()),
        )
        conn.executemany(
            "INSERT INTO peers (id, access_hash, type, username, phone_number) VALUES (?, ?, ?, ?, ?)",
            OLD_PYROGRAM_ROWS,
        )
        if fork == "pyrofork":
            conn.execute(
                "CREATE TABLE usernames (id TEXT PRIMARY KEY, peer_id INTEGER NOT NULL,"
                " last_update_on INTEGER NOT NULL DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER)))"
            )
            conn.executemany(
                "INSERT INTO usernames (peer_id, id) VALUES (?, ?)", [(102, "helper_bot"), (102, "helper2")]
            )
        elif version >= 4:
            conn.execute(
                "CREATE TABLE usernames (id INTEGER, username TEXT, FOREIGN KEY (id) REFERENCES peers(id))"
            )
            conn.executemany("INSERT INTO usernames VALUES (?, ?)", [(102, "helper2")])
        if fork == "pyrofork" or version >= 5:
            conn.execute(_UPDATE_STATE_TABLE)
            conn.executemany(
                "INSERT INTO update_state VALUES (?, ?, ?, ?, ?)",
                [
                    (0, STATE.pts, STATE.qts, STATE.date, STATE.seq),
                    (-1000000001234, CHANNEL_PTS, None, None, None),
                ],
            )
    conn.close()
    return path


async def contents(store: Any) -> list[tuple[Any, ...]]:
    """Everything the store holds, per session, to show that a failed import changed nothing."""
    found = []
    for name in await store.list_sessions():
        account = store.account(name)
        found.append(
            (
                name,
                await account.session.load(),
                peer_facts(await account.peers.list()),
                await account.updates.load_state(),
                await account.updates.list_channels(),
            )
        )
    return found
