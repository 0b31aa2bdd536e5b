"""Hostile arguments for every repository method that takes an id, a limit, a key or a token: an
`InvalidArgument` before any SQL (so stored data is unchanged), or an answer; never a raw driver error
(such as `dc_auth.delete(2**40)` on PostgreSQL, whose column is 32-bit)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.hostile.support import hostile_ints, unchanged_unless_accepted
from tgpersist import (
    Account,
    Conversation,
    DcAuth,
    DurableUpdate,
    InvalidArgument,
    Peer,
    PeerType,
    SentFile,
    Session,
    Store,
)

INT64 = range(-(2**63), 2**63)
KEY = b"k" * 256
MD5 = bytes(range(16))

Call = Callable[[Account, Any], Awaitable[Any]]

#: Calls that take one integer argument (the rest fixed and valid).
INTEGER_CALLS: dict[str, Call] = {
    "peers.get": lambda a, v: a.peers.get(v),
    "peers.get(bare)": lambda a, v: a.peers.get(v, PeerType.USER),
    "peers.delete": lambda a, v: a.peers.delete(v),
    "dc_auth.load": lambda a, v: a.dc_auth.load(v),
    "dc_auth.delete": lambda a, v: a.dc_auth.delete(v),
    "conversations.load(chat)": lambda a, v: a.conversations.load(v, 2),
    "conversations.load(user)": lambda a, v: a.conversations.load(1, v),
    "conversations.load(thread)": lambda a, v: a.conversations.load(1, 2, thread_id=v),
    "conversations.delete": lambda a, v: a.conversations.delete(v, 2),
    "conversations.list": lambda a, v: a.conversations.list(chat_id=v),
    "updates.load_channel": lambda a, v: a.updates.load_channel(v),
    "updates.delete_channel": lambda a, v: a.updates.delete_channel(v),
    "updates.claim": lambda a, v: a.updates.claim(v, owner="w"),
    "updates.dead_letters": lambda a, v: a.updates.dead_letters(v),
    "updates.pending": lambda a, v: a.updates.pending(v),
    "files.get(size)": lambda a, v: a.files.get(MD5, v, 0),
    "files.delete(type)": lambda a, v: a.files.delete(MD5, 10, v),
    "session.save(token)": lambda a, v: a.session.save(Session(a.name, dc_id=2), token=v),
    "updates.save_state(token)": lambda a, v: a.updates.save_state(a_state(), token=v),
}

#: Calls whose integer argument may be None (meaning: not given).
OPTIONAL = {
    "conversations.list",
    "conversations.load(thread)",
    "session.save(token)",
    "updates.save_state(token)",
}

#: Calls that take one text argument.
TEXT_CALLS: dict[str, Call] = {
    "peers.get_by_username": lambda a, v: a.peers.get_by_username(v),
    "peers.get_by_phone": lambda a, v: a.peers.get_by_phone(v),
    "updates.seen": lambda a, v: a.updates.seen(v),
    "updates.forget": lambda a, v: a.updates.forget(v),
    "updates.get": lambda a, v: a.updates.get(v),
    "updates.ack": lambda a, v: a.updates.ack(v),
    "updates.requeue": lambda a, v: a.updates.requeue(v),
    "updates.extend_lease(owner)": lambda a, v: a.updates.extend_lease("u1", owner=v),
    "updates.fail(error)": lambda a, v: a.updates.fail("u1", v),
    "conversations.load(namespace)": lambda a, v: a.conversations.load(1, 2, namespace=v),
    "session.acquire(owner)": lambda a, v: a.session.acquire(owner=v, heartbeat=0),
}

hostile_text: st.SearchStrategy[Any] = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=30),
    st.sampled_from(["", "x" * 256, "x" * 5000, "a\x00b", "\udcff", "'; DROP TABLE x; --", "@", "+"]),
    st.sampled_from([None, 1, b"bytes", ["list"], 1.5]),
)


def a_state() -> Any:
    from tgpersist import UpdateState

    return UpdateState(1, 2, 3, 4)


async def seeded(store: Store) -> Account:
    """An account holding one row of every kind, for calls to find (or leave alone)."""
    account = store.account("victim")
    if await account.session.load() is None:
        await account.session.save(Session("victim", dc_id=2, auth_key=KEY))
        await account.peers.save(Peer(101, PeerType.USER, 5, username="alice", phone_number="+1 555"))
        await account.dc_auth.save(DcAuth(4, auth_key=KEY))
        await account.conversations.save(Conversation(1, 2, data={"a": 1}))
        await account.updates.enqueue(DurableUpdate(b"p", id="u1"))
        await account.updates.remember("msg:1")
        await account.files.save(SentFile(MD5, 10, 0, 7, 8))
    return account


@settings()
@given(call=st.sampled_from(sorted(INTEGER_CALLS)), value=hostile_ints)
@example(call="dc_auth.delete", value=2**40)
@example(call="dc_auth.load", value=2**31)
@example(call="peers.get", value=2**63)
@example(call="updates.claim", value=2**31)
@example(call="session.save(token)", value=2**64)
async def test_integer_arguments(store: Store, call: str, value: Any) -> None:
    account = await seeded(store)
    result = await unchanged_unless_accepted(store, INTEGER_CALLS[call](account, value))
    an_int64 = isinstance(value, int) and not isinstance(value, bool) and value in INT64
    if isinstance(result, Exception):
        # Out of range or not an int: rejected as an argument. Else a typed answer (LeaseLost...).
        assert an_int64 or isinstance(result, InvalidArgument), repr(result)
    else:
        assert an_int64 or (value is None and call in OPTIONAL), (call, value)


@settings()
@given(call=st.sampled_from(sorted(TEXT_CALLS)), value=hostile_text)
@example(call="updates.fail(error)", value="e" * (2 << 20))
@example(call="peers.get_by_phone", value="+" + "1" * 40)
async def test_text_arguments(store: Store, call: str, value: Any) -> None:
    account = await seeded(store)
    result = await unchanged_unless_accepted(store, TEXT_CALLS[call](account, value))
    if isinstance(result, Exception):
        assert isinstance(result, InvalidArgument), repr(result)
    else:
        assert isinstance(value, str) or (call, value) == ("session.acquire(owner)", None), (call, value)
    held = getattr(result, "release", None)
    if held is not None:
        await held()
