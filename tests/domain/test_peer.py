"""Peer validation, username normalisation and the Bot API dialog id helpers."""

from __future__ import annotations

from typing import Any

import pytest

from tgpersist import InvalidArgument, Peer, PeerKind, PeerType, from_dialog_id, to_dialog_id
from tgpersist.domain.peer import CHANNEL_OFFSET, MAX_CHANNEL_ID, MAX_CHAT_ID


@pytest.mark.parametrize(
    ("bare", "kind", "dialog"),
    [
        (1, PeerKind.USER, 1),
        (2**63 - 1, PeerKind.USER, 2**63 - 1),
        (1, PeerKind.CHAT, -1),
        (MAX_CHAT_ID, PeerKind.CHAT, -MAX_CHAT_ID),
        (1, PeerKind.CHANNEL, -1_000_000_000_001),
        (1234567890, PeerKind.CHANNEL, -1001234567890),
        (MAX_CHANNEL_ID, PeerKind.CHANNEL, -(2**63) + 1),
    ],
)
def test_dialog_ids_round_trip(bare: int, kind: PeerKind, dialog: int) -> None:
    assert to_dialog_id(bare, kind) == dialog
    assert from_dialog_id(dialog) == (bare, kind)


def test_dialog_id_of_peer_types() -> None:
    assert Peer(5, PeerType.BOT).dialog_id == 5
    assert Peer(5, PeerType.CHAT).dialog_id == -5
    for t in (PeerType.CHANNEL, PeerType.SUPERGROUP, PeerType.FORUM, PeerType.DIRECT, PeerType.COMMUNITY):
        assert Peer(5, t).dialog_id == -CHANNEL_OFFSET - 5


@pytest.mark.parametrize("bad", [0, 2**63, -(2**63) - 1, "1", 1.0, None])
def test_bad_dialog_ids(bad: Any) -> None:
    with pytest.raises(InvalidArgument) as info:
        from_dialog_id(bad)
    assert info.value.field == "peer_id"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"id": 0}, "id"),
        ({"id": MAX_CHAT_ID + 1, "type": PeerType.CHAT}, "id"),
        ({"id": MAX_CHANNEL_ID + 1, "type": PeerType.CHANNEL}, "id"),
        ({"type": "martian"}, "type"),
        ({"access_hash": 2**63}, "access_hash"),
        ({"username": "bad name"}, "username"),
        ({"username": "x" * 65}, "username"),
        ({"usernames": "single"}, "usernames"),
        ({"usernames": ("ok", "OK")}, "usernames"),
        ({"usernames": ("ok", 5)}, "usernames"),
        ({"phone_number": "call me"}, "phone_number"),
        ({"phone_number": "+"}, "phone_number"),
        ({"title": "t\x00"}, "title"),
        ({"is_bot": True, "type": PeerType.CHANNEL}, "is_bot"),
        ({"is_bot": False, "type": PeerType.BOT}, "is_bot"),
        ({"photo_id": "1"}, "photo_id"),
        ({"language": "x" * 33}, "language"),
    ],
)
def test_invalid_peers_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {"id": 1, "type": PeerType.USER, **kwargs}
    with pytest.raises(InvalidArgument) as info:
        Peer(**values)
    assert info.value.field == field


def test_primary_username_is_always_in_usernames() -> None:
    assert Peer(1, PeerType.USER, username="main").usernames == ("main",)
    assert Peer(1, PeerType.USER, username="main", usernames=["x", "y"]).usernames == ("main", "x", "y")
    assert Peer(1, PeerType.USER, username="Main", usernames=("x", "main")).usernames == ("x", "main")


def test_type_strings_and_bot_flag_are_normalised() -> None:
    assert Peer(1, "supergroup").type is PeerType.SUPERGROUP  # type: ignore[arg-type]
    assert Peer(1, PeerType.BOT).is_bot is True
    assert Peer(1, PeerType.USER, is_bot=True).type is PeerType.BOT
