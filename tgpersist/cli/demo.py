"""`tgpersist demo`: every store of the library exercised once on a database, and what it stored."""

from __future__ import annotations

import argparse
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import tgpersist
from tgpersist import (
    ChannelState,
    Conversation,
    DcAuth,
    DurableUpdate,
    Peer,
    PeerType,
    Session,
    UpdateState,
    session_strings,
)
from tgpersist.cli.common import add_url, open_store


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="store a demo account and print what was stored")
    demo.add_argument("--name", default="demo", help="session name to use (default: demo)")
    add_url(demo)
    demo.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    async with await open_store(args) as store:
        print(f"store: {store!r} ({store.dialect})")
        acct = store.account(args.name)
        await acct.session.save(
            Session(
                name=args.name,
                dc_id=2,
                api_id=12345,
                api_hash=secrets.token_hex(16),
                auth_key=secrets.token_bytes(256),
                server_address="149.154.167.51",
                port=443,
                user_id=777000111,
                first_name="Demo",
                username="tgpersist_demo",
                date=int(datetime.now(UTC).timestamp()),
            )
        )
        await acct.dc_auth.save(DcAuth(4, auth_key=secrets.token_bytes(256), ipv4="149.154.167.91", port=443))
        count = await acct.peers.save_many(
            [
                Peer(
                    101, PeerType.USER, 1111, username="alice", first_name="Alice", phone_number="+1 555 0101"
                ),
                Peer(102, PeerType.BOT, 2222, username="helper_bot", usernames=("helper_bot", "helper")),
                Peer(103, PeerType.CHAT, title="Old group"),
                Peer(1_234_567, PeerType.SUPERGROUP, 3333, username="devchat", title="Developers"),
            ]
        )
        print(f"saved session {args.name!r} and {count} peers")
        by_name = await acct.peers.get_by_username("@DevChat")
        by_phone = await acct.peers.get_by_phone("15550101")
        print(f"peer by username @DevChat: dialog id {by_name.dialog_id if by_name else None}")
        print(f"peer by phone 15550101:    {by_phone.first_name if by_phone else None}")
        await acct.conversations.save(
            Conversation(
                chat_id=101,
                user_id=101,
                name="order",
                step="ask_address",
                data={"items": ["tea"], "total": 3},
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
        )
        conversation = await acct.conversations.load(101, 101)
        assert conversation is not None
        print(f"conversation: step={conversation.step} data={conversation.data}")
        await acct.updates.save_state(UpdateState(pts=100, qts=5, date=1_700_000_000, seq=3))
        await acct.updates.save_channel(ChannelState(1_234_567, 42))
        print(
            f"update state: {await acct.updates.load_state()}; channels: {await acct.updates.list_channels()}"
        )
        key = f"msg:101:{secrets.randbelow(2**31)}"  # a message id this run has not seen before
        first, again = await acct.updates.remember(key), await acct.updates.remember(key)
        print(f"remember {key} -> {first}, again -> {again}")
        await acct.updates.enqueue_many(
            [DurableUpdate(b"update-1", id="u1"), DurableUpdate(b"update-2", id="u2")]
        )
        claimed = await acct.updates.claim(10, owner="demo-worker")
        for update in claimed:
            await acct.updates.ack(update.id)
        print(
            f"durable queue: claimed and acked {[u.id for u in claimed]}; left {await acct.updates.counts()}"
        )
        async with acct.session.lease(owner="demo-process", ttl=30) as lease:
            print(f"lease: held by {lease.owner} (token {lease.token}) until {lease.expires_at:%H:%M:%S} UTC")
            await acct.updates.save_state(UpdateState(pts=101, qts=5, date=1_700_000_001, seq=4))  # fenced
        print(f"lease released; holder now: {await acct.session.holder()}")
        session = await acct.session.load()
        assert session is not None
        round_trip = session_strings.decode(session_strings.encode(session, "telethon"), name=args.name)
        same_key = round_trip.session.auth_key == session.auth_key
        print(f"Telethon session string round trip: same DC, address and auth key: {same_key}")
        print(f"session (key redacted): {session}")
        print(f"sessions in store: {await store.list_sessions()}")
        print(f"tgpersist {tgpersist.__version__}: ok")
    return 0
