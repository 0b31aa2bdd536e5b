"""Update state, channel state and durable update validation."""

from __future__ import annotations

from typing import Any

import pytest

from tgpersist import ChannelState, DurableUpdate, InvalidArgument, UpdateState


@pytest.mark.parametrize(("field", "value"), [("pts", -1), ("qts", 2**32), ("date", "1"), ("seq", None)])
def test_invalid_update_state(field: str, value: Any) -> None:
    with pytest.raises(InvalidArgument) as info:
        UpdateState(**{field: value})
    assert info.value.field == field


def test_invalid_channel_state() -> None:
    with pytest.raises(InvalidArgument) as info:
        ChannelState(channel_id=0, pts=1)
    assert info.value.field == "channel_id"
    with pytest.raises(InvalidArgument) as info:
        ChannelState(channel_id=1, pts=-5)
    assert info.value.field == "pts"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"payload": "text"}, "payload"),
        ({"id": ""}, "id"),
        ({"attempts": -1}, "attempts"),
        ({"lease_owner": ""}, "lease_owner"),
    ],
)
def test_invalid_durable_update(kwargs: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {"payload": b"x", **kwargs}
    with pytest.raises(InvalidArgument) as info:
        DurableUpdate(**values)
    assert info.value.field == field


def test_generated_ids_are_unique() -> None:
    assert len({DurableUpdate(b"x").id for _ in range(100)}) == 100
