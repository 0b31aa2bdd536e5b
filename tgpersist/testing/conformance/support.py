"""Shared by the conformance modules: fresh account names, a session with every field set, keys."""

from __future__ import annotations

import uuid

from tgpersist import Session

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
KEY_A = bytes(range(256))
KEY_B = bytes(reversed(range(256)))


def fresh_name(label: str = "acct") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def full_session(name: str) -> Session:
    return Session(
        name=name,
        dc_id=4,
        api_id=2**31 - 1,
        api_hash="0123456789abcdef0123456789ABCDEF",
        test_mode=False,
        auth_key=KEY_A,
        server_address="2001:67c:4e8:f004::a",
        port=443,
        user_id=INT64_MAX,
        is_bot=False,
        first_name="Ünïcode ✓ 'quotes' \"double\"",
        last_name="",
        username="Alice_1",
        date=1_700_000_000,
        server_salt=INT64_MIN,
        takeout_id=INT64_MAX,
        state=b"\x00\xff" * 100,
    )
