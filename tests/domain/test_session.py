"""Session and DcAuth: validation on construction, normalisation, and redacted reprs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tgpersist import DcAuth, InvalidArgument, Session

KEY = bytes(range(256))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "x" * 256),
        ("name", 5),
        ("name", "a\x00b"),
        ("dc_id", 0),
        ("dc_id", 6),
        ("dc_id", 10002),
        ("dc_id", "2"),
        ("dc_id", True),
        ("api_id", 0),
        ("api_id", 2**31),
        ("api_hash", "short"),
        ("api_hash", "g" * 32),
        ("test_mode", 1),
        ("auth_key", b"x" * 255),
        ("auth_key", b"x" * 257),
        ("auth_key", "x" * 256),
        ("server_address", "not-an-ip"),
        ("server_address", "256.1.1.1"),
        ("port", 0),
        ("port", 65536),
        ("user_id", 0),
        ("user_id", 2**63),
        ("is_bot", "yes"),
        ("first_name", "x" * 1025),
        ("first_name", "\ud800"),
        ("username", "has space"),
        ("date", -1),
        ("server_salt", 2**63),
        ("server_salt", -(2**63) - 1),
        ("takeout_id", 1.5),
        ("state", "text"),
    ],
)
def test_invalid_session_fields_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(InvalidArgument) as info:
        Session(**{"name": "alice", field: value})
    assert info.value.field == field
    assert field in str(info.value)


def test_test_dc_ids_need_test_mode() -> None:
    assert Session("a", dc_id=10002, test_mode=True).dc_id == 10002
    assert Session("a", dc_id=2, test_mode=True).dc_id == 2


def test_addresses_are_canonical() -> None:
    assert Session("a", server_address="2001:0db8:0000::0001").server_address == "2001:db8::1"
    assert Session("a", server_address="149.154.167.51").server_address == "149.154.167.51"


def test_replace_revalidates() -> None:
    session = Session("a", auth_key=KEY)
    with pytest.raises(InvalidArgument):
        replace(session, port=70000)


def test_reprs_hide_secrets() -> None:
    session = Session("a", auth_key=KEY, api_hash="ab" * 16)
    for text in (repr(session), str(session)):
        assert "<redacted>" in text
        assert KEY.hex() not in text and str(KEY) not in text and "ab" * 16 not in text
    entry = DcAuth(2, auth_key=KEY)
    assert "<redacted>" in repr(entry) and KEY.hex() not in repr(entry) and str(KEY) not in repr(entry)
    assert "auth_key=None" in repr(Session("a"))


def test_error_messages_never_contain_the_key() -> None:
    with pytest.raises(InvalidArgument) as info:
        Session("a", auth_key=b"\x01" * 200)
    assert "\\x01" not in str(info.value) and "200" in str(info.value)
    with pytest.raises(InvalidArgument) as info:
        Session("a", api_hash="secret-hash-value-that-is-wrong!")
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dc_id", 0),
        ("ipv4", "::1"),
        ("ipv6", "1.2.3.4"),
        ("port", -1),
        ("media_only", None),
        ("auth_key", b""),
    ],
)
def test_invalid_dc_auth_fields(field: str, value: Any) -> None:
    with pytest.raises(InvalidArgument) as info:
        DcAuth(**{"dc_id": 2, field: value})
    assert info.value.field == field
