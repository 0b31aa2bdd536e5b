"""Conversations: keys, replacement and expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tgpersist import Conversation, Store
from tgpersist.testing.conformance.support import INT64_MAX, INT64_MIN, fresh_name


class ConversationConformance:
    """Conversations: keys, replacement and expiry."""

    # -- conversations ----------------------------------------------------------------------------
    async def test_conversation_round_trip(self, store: Store) -> None:
        acct = store.account(fresh_name())
        future = datetime.now(UTC) + timedelta(hours=1)
        values: list[Any] = [
            {"nested": [1, 2.5, None, True, "ü"], "n": INT64_MAX},
            b"\x00raw\xff",
            None,
            "text",
            [1, 2],
        ]
        for i, data in enumerate(values):
            conv = Conversation(
                INT64_MIN,
                INT64_MAX,
                thread_id=i + 1,
                name="order",
                step="address",
                data=data,
                expires_at=future,
            )
            await acct.conversations.save(conv)
            assert await acct.conversations.load(INT64_MIN, INT64_MAX, i + 1) == conv

    async def test_conversation_keys_are_distinct(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.conversations.save(Conversation(1, 2, step="plain"))
        await acct.conversations.save(Conversation(1, 2, thread_id=5, step="thread"))
        await acct.conversations.save(Conversation(1, 2, namespace="business:x", step="ns"))
        assert (await acct.conversations.load(1, 2)).step == "plain"  # type: ignore[union-attr]
        assert (await acct.conversations.load(1, 2, 5)).step == "thread"  # type: ignore[union-attr]
        assert (await acct.conversations.load(1, 2, namespace="business:x")).step == "ns"  # type: ignore[union-attr]
        assert await acct.conversations.load(2, 1) is None
        assert len(await acct.conversations.list()) == 3
        assert await acct.conversations.delete(1, 2, 5) is True
        assert await acct.conversations.load(1, 2, 5) is None
        assert await acct.conversations.delete(1, 2, 5) is False

    async def test_conversation_replace_keeps_created_at(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.conversations.save(Conversation(1, 1, step="one"))
        first = await acct.conversations.load(1, 1)
        await acct.conversations.save(Conversation(1, 1, step="two"))
        second = await acct.conversations.load(1, 1)
        assert first is not None and second is not None and second.step == "two"
        assert second.created_at == first.created_at

    async def test_expired_conversations_are_not_returned_and_are_pruned(self, store: Store) -> None:
        acct = store.account(fresh_name())
        past = datetime.now(UTC) - timedelta(seconds=1)
        await acct.conversations.save(Conversation(1, 1, step="old", expires_at=past))
        await acct.conversations.save(Conversation(2, 2, step="live"))
        assert await acct.conversations.load(1, 1) is None
        assert [c.step for c in await acct.conversations.list()] == ["live"]
        assert await acct.conversations.prune() == 1
        assert await acct.conversations.prune() == 0
