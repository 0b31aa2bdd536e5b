"""Bad input: typed errors, nothing changed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tgpersist import InvalidArgument, Peer, PeerType, Store
from tgpersist.testing.conformance.support import fresh_name, full_session


class ValidationConformance:
    """Bad input: typed errors, nothing changed."""

    # -- bad input ----------------------------------------------------------------------------------------
    async def test_invalid_input_raises_and_changes_nothing(self, store: Store) -> None:
        name = fresh_name()
        acct = store.account(name)
        await acct.session.save(full_session(name))
        await acct.peers.save(Peer(1, PeerType.USER, 1, username="keep"))
        before = (await acct.session.load(), await acct.peers.list())
        bad_calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("session", lambda: acct.session.save("not a session")),  # type: ignore[arg-type]
            ("peers", lambda: acct.peers.save_many([Peer(2, PeerType.USER, 2), "x"])),  # type: ignore[list-item]
            ("peer_id", lambda: acct.peers.get(0)),
            ("peer_id", lambda: acct.peers.get(2**63)),
            ("username", lambda: acct.peers.get_by_username("x" * 100)),
            ("phone", lambda: acct.peers.get_by_phone("call me")),
            ("state", lambda: acct.updates.save_state((1, 2, 3, 4))),  # type: ignore[arg-type]
            ("channel_id", lambda: acct.updates.load_channel(0)),
            ("key", lambda: acct.updates.remember("")),
            ("ttl", lambda: acct.updates.remember("k", ttl=-1)),
            ("limit", lambda: acct.updates.claim(0)),
            ("update", lambda: acct.updates.enqueue("text")),  # type: ignore[arg-type]
            ("chat_id", lambda: acct.conversations.load(2**64, 1)),
            ("entry", lambda: acct.dc_auth.save(None)),  # type: ignore[arg-type]
        ]
        for field, call in bad_calls:
            with pytest.raises(InvalidArgument) as info:
                await call()
            assert info.value.field == field, (field, info.value)
        assert (await acct.session.load(), await acct.peers.list()) == before

    async def test_invalid_account_names(self, store: Store) -> None:
        for bad in ("", "x" * 256, "nul\x00"):
            with pytest.raises(InvalidArgument) as info:
                store.account(bad)
            assert info.value.field == "name"
