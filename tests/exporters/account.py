"""A stored account with one peer of every kind, for the exporters to write out."""

from __future__ import annotations

from tgpersist import ChannelState, Peer, PeerType, SentFile, Session, Store, UpdateState

AUTH_KEY = bytes((i * 13 + 1) % 256 for i in range(256))
USER_ID = 6_000_000_007
STATE = UpdateState(pts=500, qts=7, date=1_700_000_123, seq=31)
CHANNELS = [ChannelState(1234, 900), ChannelState(1235, 901)]
SENT_FILES = [SentFile(b"\x01" * 16, 10, 0, 111, -222), SentFile(b"\x02" * 16, 20, 1, 333, 444)]

PEERS = [
    Peer(
        101,
        PeerType.USER,
        -(2**63),
        username="Alice",
        usernames=("Alice", "alice_two"),
        first_name="Alice",
        last_name="Smith",
        phone_number="+1 555 0101",
    ),
    Peer(102, PeerType.BOT, 2**63 - 1, username="helper_bot", first_name="Helper"),
    Peer(103, PeerType.USER, None, first_name="Hashless"),  # unusable by the clients: left out
    Peer(55, PeerType.CHAT, None, title="Old group"),
    Peer(1234, PeerType.CHANNEL, 99, username="NewsChan", title="News"),
    Peer(1235, PeerType.SUPERGROUP, -98, title="Devs"),
    Peer(1236, PeerType.FORUM, 97, title="Forum"),
    Peer(1237, PeerType.DIRECT, 96),
    Peer(1238, PeerType.COMMUNITY, 95),
]


def session(name: str, **fields: object) -> Session:
    values: dict[str, object] = {
        "dc_id": 4,
        "server_address": "149.154.167.91",
        "port": 443,
        "api_id": 24680,
        "auth_key": AUTH_KEY,
        "user_id": USER_ID,
        "is_bot": False,
        "date": 1_700_000_999,
        "takeout_id": 555,
    }
    values.update(fields)
    return Session(name=name, **values)  # type: ignore[arg-type]


async def fill(store: Store, name: str = "alice", **fields: object) -> None:
    account = store.account(name)
    await account.session.save(session(name, **fields))
    await account.peers.save_many(PEERS)
    await account.updates.save_state(STATE)
    await account.updates.save_channels(CHANNELS)
    await account.files.save_many(SENT_FILES)
