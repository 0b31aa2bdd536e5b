"""Run inside a grammers venv (Python >= 3.12): one history of session calls, call by call, on grammers'
own `SqliteSession` (with its 0.4.8 bugs fixed the way `tgpersist.adapters.grammers` documents) and on
`GrammersSession`; then `GrammersSession` again after reopening, and a real `Client` built on it.

    python -m tests.clients.grammers_session DB_URL
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from grammers.client import Client
from grammers.sessions import (
    ChannelKind,
    ChannelState,
    DcOption,
    PeerId,
    PeerInfo,
    PeerKind,
    SqliteSession,
    UpdatesState,
    UpdateState,
)
from grammers.sessions.sqlite import PeerSubtype
from grammers.tl import types as tl
from sqlalchemy import text

import tgpersist
from tgpersist.adapters.grammers import GrammersSession

KEY2, KEY4 = bytes(range(256)), bytes(reversed(range(256)))
CHANNEL = -1_000_000_000_000
KINDS = {
    int(PeerSubtype.Megagroup): ChannelKind.Megagroup,
    int(PeerSubtype.Broadcast): ChannelKind.Broadcast,
    int(PeerSubtype.Gigagroup): ChannelKind.Gigagroup,
}


class IntendedSqliteSession:
    """`SqliteSession` doing what its code intends where 0.4.8 fails (see the adapter's docstring).

    A wrapper: grammers' `Session` wants every method defined in the subclass itself."""

    def __init__(self) -> None:
        self.inner = SqliteSession()

    async def home_dc_id(self) -> Any:
        return await self.inner.home_dc_id()

    async def set_home_dc_id(self, dc_id: int) -> None:
        await self.inner.set_home_dc_id(dc_id)

    async def dc_option(self, dc_id: int) -> Any:
        return await self.inner.dc_option(dc_id)

    async def set_dc_option(self, option: Any) -> None:
        await self.inner.set_dc_option(option)

    async def cache_peer(self, info: Any) -> None:
        await self.inner.cache_peer(info)

    async def peer(self, peer: Any) -> Any:
        peer = _peer_id(peer)
        if peer is None:
            return None
        if peer.kind != PeerKind.Channel:
            return await self.inner.peer(peer)
        await self.inner.init()
        row = self.inner._conn.execute(
            "SELECT * FROM peer_info WHERE peer_id = ?", (peer.bot_api_dialog_id,)
        ).fetchone()
        if row is None:
            return None
        return PeerInfo.Channel(id=peer.bare_id, auth=row[1], kind=KINDS.get(row[2] or 0))

    async def updates_state(self) -> Any:
        state = await self.inner.updates_state()
        rows = self.inner._conn.execute("SELECT * FROM channel_state").fetchall()
        state.channels = [ChannelState(int(i), int(pts)) for i, pts in rows]
        return state

    async def set_update_state(self, update: Any) -> None:
        if isinstance(update, UpdatesState):
            return await self.inner.set_update_state(update)
        await self.inner.init()
        conn = self.inner._conn
        exists = conn.execute("SELECT 1 FROM update_state").fetchone() is not None
        if type(update).__name__ == "Channel":
            conn.execute("INSERT OR REPLACE INTO channel_state VALUES (?, ?)", (update.id, update.pts))
        elif exists:
            conn.execute("UPDATE update_state SET qts = ?", (update.qts,))
        else:
            conn.execute("INSERT INTO update_state VALUES (0, ?, 0, 0)", (update.qts,))
        conn.commit()
        return None


def _peer_id(peer: Any) -> Any:
    for cls, attribute, make in (
        ((tl.InputPeerUser, tl.PeerUser), "user_id", PeerId.user),
        ((tl.InputPeerChat, tl.PeerChat), "chat_id", PeerId.chat),
        ((tl.InputPeerChannel, tl.PeerChannel), "channel_id", PeerId.channel),
    ):
        if isinstance(peer, cls):
            return make(getattr(peer, attribute))
    if isinstance(peer, tl.InputPeerSelf):
        return PeerId.self_user()
    return None if isinstance(peer, tl.InputPeerEmpty) else PeerId(peer)


Call = Callable[[Any], Awaitable[Any]]
PEERS = [
    PeerInfo.User(42, 1, False, True),  # self
    PeerInfo.User(43, 2, True, None),  # a bot
    PeerInfo.User(44, None, None, None),  # no access hash
    PeerInfo.Chat(11),
    PeerInfo.Channel(11, 4, ChannelKind.Broadcast),
    PeerInfo.Channel(12, 5, ChannelKind.Megagroup),
    PeerInfo.Channel(13, 6, ChannelKind.Gigagroup),
    PeerInfo.Channel(14, None, ChannelKind.Megagroup),  # no access hash
]
LOOKUPS: list[Any] = [
    42,
    43,
    44,
    45,
    -11,
    -12,
    CHANNEL - 11,
    CHANNEL - 12,
    CHANNEL - 13,
    CHANNEL - 14,
    CHANNEL - 15,
    PeerId.self_user(),
    PeerId.user(43),
    PeerId.chat(11),
    PeerId.channel(12),
    tl.InputPeerUser(user_id=43, access_hash=2),
    tl.InputPeerChannel(channel_id=11, access_hash=4),
    tl.InputPeerChat(chat_id=11),
    tl.InputPeerSelf(),
    tl.InputPeerEmpty(),
    tl.PeerUser(user_id=42),
    tl.PeerChannel(channel_id=13),
    tl.PeerChat(chat_id=12),
    0,
]
SCRIPT: list[tuple[str, Call]] = [
    ("set home", lambda s: s.set_home_dc_id(4)),
    (
        "dc 4",
        lambda s: s.set_dc_option(DcOption(4, "149.154.167.91:443", "[2001:67c:4e8:f004::a]:443", KEY4)),
    ),
    ("dc 2 v4 only", lambda s: s.set_dc_option(DcOption(2, "149.154.167.41:443", None, KEY2))),
    ("dc 3 no key", lambda s: s.set_dc_option(DcOption(3, "149.154.175.100:443", None, None))),
    *((f"cache {p!r}", lambda s, p=p: s.cache_peer(p)) for p in PEERS),
    ("bot again", lambda s: s.cache_peer(PeerInfo.User(43, 20, True, False))),
    ("home back", lambda s: s.set_home_dc_id(2)),
    (
        "all",
        lambda s: s.set_update_state(UpdatesState(1, 2, 3, 4, [ChannelState(11, 10), ChannelState(12, 20)])),
    ),
    ("secondary", lambda s: s.set_update_state(UpdateState.Primary(7))),
    ("channel", lambda s: s.set_update_state(UpdateState.Channel(13, 30))),
    ("channel again", lambda s: s.set_update_state(UpdateState.Channel(11, 11))),
    ("all again", lambda s: s.set_update_state(UpdatesState(5, 6, 7, 8, [ChannelState(12, 21)]))),
    ("channel after", lambda s: s.set_update_state(UpdateState.Channel(14, 40))),
]


async def outcome(call: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return ("ok", repr(await call()))
    except Exception as error:
        return (type(error).__name__, str(error))


async def observe(session: Any) -> dict[str, Any]:
    state = await session.updates_state()
    return {
        "home": await session.home_dc_id(),
        "dcs": [repr(await session.dc_option(i)) for i in range(0, 7)],
        "peers": [await outcome(lambda p=p: session.peer(p)) for p in LOOKUPS],
        "state": [state.pts, state.qts, state.date, state.seq, sorted((c.id, c.pts) for c in state.channels)],
    }


async def main(url: str) -> dict[str, Any]:
    differences: list[Any] = []
    theirs = IntendedSqliteSession()
    async with await tgpersist.open_store(url) as store:
        ours = await GrammersSession.open(store, "grammers")
        compared = 0
        for label, call in [("open", lambda s: s.home_dc_id()), *SCRIPT]:
            results = [await outcome(lambda e=engine, c=call: c(e)) for engine in (theirs, ours)]
            seen = [await observe(engine) for engine in (theirs, ours)]
            compared += 1
            if results[0] != results[1] or seen[0] != seen[1]:
                differences.append(
                    {"after": label, "sqlite": [results[0], seen[0]], "ours": [results[1], seen[1]]}
                )
        expected = await observe(theirs)
        async with await tgpersist.open_store(url) as other:
            try:
                await GrammersSession.open(other, "grammers", owner="second")
            except tgpersist.SessionBusy:
                busy = True
            else:
                busy = False
        await ours.aclose()
    async with await tgpersist.open_store(url) as store:
        again = await GrammersSession.open(store, "grammers")
        reopened = await observe(again)
        compared += 1
        gigagroup = PeerInfo.Channel(13, 6, ChannelKind.Megagroup)  # documented: kept as a megagroup
        index = LOOKUPS.index(CHANNEL - 13)
        wanted = {**expected, "peers": list(expected["peers"])}
        for i, lookup in enumerate(LOOKUPS):
            if lookup in (CHANNEL - 13, PeerId.channel(13)) or (
                isinstance(lookup, tl.PeerChannel) and lookup.channel_id == 13
            ):
                wanted["peers"][i] = ("ok", repr(gigagroup))
        if reopened != wanted:
            differences.append({"after": "reopening", "expected": wanted, "ours": reopened, "index": index})
        session_row = await store.account("grammers").session.load()
        client = Client(again, 12345, "0123456789abcdef0123456789abcdef", code=lambda: "12345")
        takes_it = client.session is again
        mirrored = session_row is not None and (
            session_row.dc_id,
            session_row.auth_key,
            session_row.user_id,
        ) == (2, KEY2, 42)
        await again.aclose()
    return {
        "calls": compared,
        "differences": differences,
        "home_mirrored": mirrored,
        "client_takes_it": takes_it,
        "busy": busy,
    }


async def lost_lease(url: str) -> dict[str, Any]:
    """The default lost-lease action: a stolen lease row, noticed by the next renewal."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("tgpersist.adapters.grammers").addHandler(handler)
    async with await tgpersist.open_store(url) as store:
        session = await GrammersSession.open(store, "grammers", owner="first", ttl=0.3)
        had_key = (await session.dc_option(2)).auth_key == KEY2
        async with store.engine.begin() as conn:  # another owner's token: the lease is stolen
            await conn.execute(text("UPDATE tgpersist_sessions SET lease_token = lease_token + 100"))
        for _ in range(100):
            if session.lease is not None and session.lease.lost:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)
        before = await store.account("grammers").dc_auth.list()
        try:
            await session.set_dc_option(DcOption(4, "127.0.0.9:443", None, KEY4))
        except tgpersist.LeaseLost:
            refused = True
        else:
            refused = False
        after = await store.account("grammers").dc_auth.list()
        errors = [r for r in records if r.levelno == logging.ERROR]
        text_logged = " ".join(r.getMessage() for r in errors)
        return {
            "had_key": had_key,
            "logged": bool(errors) and getattr(errors[0], "owner", None) == "first",
            "key_not_logged": KEY2.hex() not in text_logged and repr(KEY2) not in text_logged,
            "keys_dropped": [(await session.dc_option(dc)).auth_key for dc in (1, 2, 4)],
            "refused": refused,
            "unchanged": before == after,
        }


if __name__ == "__main__":
    if sys.argv[2:] == ["lost"]:
        print(json.dumps(asyncio.run(lost_lease(sys.argv[1])), default=repr))
    else:
        print(json.dumps(asyncio.run(main(sys.argv[1])), default=repr))
