"""Conversation validation and data encoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tgpersist import Conversation, InvalidArgument
from tgpersist.domain.conversation import MAX_DATA, decode_data, encode_data


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"chat_id": 2**63}, "chat_id"),
        ({"user_id": "1"}, "user_id"),
        ({"thread_id": 0}, "thread_id"),
        ({"namespace": None}, "namespace"),
        ({"name": "n" * 256}, "name"),
        ({"step": "s\x00"}, "step"),
        ({"data": {1, 2}}, "data"),
        ({"data": float("nan")}, "data"),
        ({"data": b"x" * (MAX_DATA + 1)}, "data"),
        ({"data": "\udc80"}, "data"),
        ({"expires_at": "tomorrow"}, "expires_at"),
    ],
)
def test_invalid_conversations_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {"chat_id": 1, "user_id": 2, **kwargs}
    with pytest.raises(InvalidArgument) as info:
        Conversation(**values)
    assert info.value.field == field


@pytest.mark.parametrize("data", [None, b"", b"\x00\xff", {"a": [1, "b"]}, [], "s", 0, True])
def test_data_encoding_round_trips(data: Any) -> None:
    assert decode_data(*encode_data(data)) == data


def test_expiry_is_normalised_to_utc() -> None:
    local = datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=3)))
    assert Conversation(1, 1, expires_at=local).expires_at == datetime(2030, 1, 1, 9, tzinfo=UTC)
