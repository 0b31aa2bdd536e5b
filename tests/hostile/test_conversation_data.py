"""Hostile conversation data and expiry times: a typed error naming the field, or a faithful round
trip; never `RecursionError` or `OverflowError`, and nothing stored by a rejected save."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.hostile.support import (
    contents,
    hostile_datetimes,
    hostile_depths,
    hostile_json,
    nested,
    unchanged_unless_accepted,
)
from tgpersist import Conversation, InvalidArgument, Store
from tgpersist.errors import UnreadableRow

LIMIT = 1024 * 1024


def json_ok(data: Any) -> bool:
    """What a conversation accepts as data, judged independently of tgpersist's own walk."""
    if isinstance(data, bytes):
        return len(data) <= LIMIT
    depth, stack, items = 0, [(data, 1)], 0
    while stack:
        node, level = stack.pop()
        items += 1
        depth = max(depth, level)
        if isinstance(node, dict):
            stack += [(v, level + 1) for v in node.values()]
        elif isinstance(node, list | tuple):
            stack += [(v, level + 1) for v in node]
    if depth > 64 or items > 100_000:
        return False
    try:
        encoded = json.dumps(data, ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError, UnicodeEncodeError):
        return False
    return len(encoded) <= LIMIT


def _storable(when: datetime) -> bool:
    """Within datetime's range with a day to spare, once converted to UTC (judged by hand)."""
    offset = when.utcoffset() or timedelta(0)
    naive = when.replace(tzinfo=None)
    low, high = datetime.min + timedelta(days=1), datetime.max - timedelta(days=1)
    return low + offset <= naive <= high + offset  # utc = naive - offset


def constructed(**fields: Any) -> Conversation | InvalidArgument:
    try:
        return Conversation(1, 2, **fields)
    except InvalidArgument as error:
        return error


@settings()
@given(data=hostile_json)
@example(data=[0] * 100_001)
@example(data="x" * (LIMIT + 1))
async def test_data(store: Store, data: Any) -> None:
    await round_trip_or_rejected(store, data)


@settings()
@given(depth=hostile_depths, as_dict=st.booleans())
@example(depth=100_000, as_dict=False)
@example(depth=63, as_dict=True)
@example(depth=64, as_dict=False)
async def test_nesting(store: Store, depth: int, as_dict: bool) -> None:
    await round_trip_or_rejected(store, nested(depth, as_dict=as_dict), compare=depth <= 64)


async def round_trip_or_rejected(store: Store, data: Any, *, compare: bool = True) -> None:
    conversation = constructed(data=data)
    if isinstance(conversation, InvalidArgument):
        assert conversation.field == "data"
        assert not json_ok(data)
        return
    assert json_ok(data)
    account = store.account(f"c-{uuid.uuid4().hex[:12]}")
    result = await unchanged_unless_accepted(store, account.conversations.save(conversation))
    assert not isinstance(result, Exception), repr(result)
    loaded = await account.conversations.load(1, 2)
    assert loaded is not None
    if compare:
        expected = data if isinstance(data, bytes) else json.loads(json.dumps(data))
        assert loaded.data == expected


@settings()
@given(expires_at=hostile_datetimes)
@example(expires_at=datetime.max)
@example(expires_at=datetime.min.replace(tzinfo=UTC))
async def test_expires_at(store: Store, expires_at: Any) -> None:
    conversation = constructed(expires_at=expires_at)
    if isinstance(conversation, InvalidArgument):
        assert conversation.field == "expires_at"
        assert not isinstance(expires_at, datetime) or not _storable(expires_at)
        return
    assert _storable(expires_at)
    assert conversation.expires_at is not None and conversation.expires_at.tzinfo is UTC
    account = store.account(f"c-{uuid.uuid4().hex[:12]}")
    await account.conversations.save(conversation)
    loaded = await account.conversations.load(1, 2)
    if conversation.expires_at > datetime.now(UTC) + timedelta(minutes=1):
        assert loaded == conversation
    else:
        assert loaded is None  # expired
    assert await account.conversations.prune() in (0, 1)


async def test_deep_data_stored_by_hand_is_an_unreadable_row(store: Store) -> None:
    """A row that no version of tgpersist writes (JSON nested 100,000 deep) is reported, not a crash."""
    account = store.account("deep")
    await account.conversations.save(Conversation(1, 2, data={"k": 1}))
    table = store.models.table(store.models.Conversation)
    async with store.engine.begin() as conn:
        await conn.execute(table.update().values(data=b"[" * 100_000 + b"]" * 100_000))
    before = await contents(store)
    for read in (account.conversations.load(1, 2), account.conversations.list()):
        try:
            await read
        except UnreadableRow as error:
            assert (error.session, error.field) == ("deep", "data")
        else:
            raise AssertionError("read a row that cannot be decoded")
    assert await contents(store) == before
