"""`Session` (one logged-in MTProto account) and `DcAuth` (its permanent key for one more DC).

Both hold an auth key, the secret that *is* the account: their reprs show only whether a key is present.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from tgpersist import validation as v


def _redacted_repr(obj: Any, secrets: frozenset[str]) -> str:
    parts = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.name in secrets and value is not None:
            parts.append(f"{f.name}=<redacted>")
        else:
            parts.append(f"{f.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(parts)})"


@dataclass(frozen=True, slots=True, repr=False)
class Session:
    """One MTProto login (an account or a bot); `name` is the scope every other row hangs off."""

    name: str
    dc_id: int | None = None
    api_id: int | None = None
    api_hash: str | None = None
    test_mode: bool = False
    auth_key: bytes | None = None
    server_address: str | None = None
    port: int | None = None
    user_id: int | None = None
    is_bot: bool | None = None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    date: int | None = None
    server_salt: int | None = None
    takeout_id: int | None = None
    state: bytes | None = None
    created_at: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        v.check_name("name", self.name)
        test_mode = v.check_bool("test_mode", self.test_mode)
        if self.dc_id is not None:
            v.check_dc_id("dc_id", self.dc_id, test_mode)
        v.check_optional_int("api_id", self.api_id, 1, v.INT32_MAX)
        v.check_api_hash("api_hash", self.api_hash)
        set_ = object.__setattr__
        set_(self, "auth_key", v.check_auth_key("auth_key", self.auth_key))
        set_(self, "server_address", v.check_optional_address("server_address", self.server_address))
        if self.port is not None:
            v.check_port("port", self.port)
        v.check_optional_int("user_id", self.user_id, 1)
        v.check_optional_bool("is_bot", self.is_bot)
        v.check_optional_text("first_name", self.first_name)
        v.check_optional_text("last_name", self.last_name)
        if self.username is not None:
            v.check_username("username", self.username)
        v.check_optional_int("date", self.date, 0)
        v.check_optional_int("server_salt", self.server_salt)
        v.check_optional_int("takeout_id", self.takeout_id)
        set_(self, "state", v.check_optional_bytes("state", self.state))

    def __repr__(self) -> str:
        return _redacted_repr(self, frozenset({"auth_key", "api_hash"}))

    __str__ = __repr__


@dataclass(frozen=True, slots=True, repr=False)
class DcAuth:
    """A permanent auth key and address for one DC of one session (grammers' `DcOption`)."""

    dc_id: int
    auth_key: bytes | None = None
    server_salt: int | None = None
    ipv4: str | None = None
    ipv6: str | None = None
    port: int | None = None
    media_only: bool = False
    test_mode: bool = False
    updated_at: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        test_mode = v.check_bool("test_mode", self.test_mode)
        v.check_dc_id("dc_id", self.dc_id, test_mode)
        v.check_bool("media_only", self.media_only)
        set_ = object.__setattr__
        set_(self, "auth_key", v.check_auth_key("auth_key", self.auth_key))
        v.check_optional_int("server_salt", self.server_salt)
        set_(self, "ipv4", v.check_optional_address("ipv4", self.ipv4, 4))
        set_(self, "ipv6", v.check_optional_address("ipv6", self.ipv6, 6))
        if self.port is not None:
            v.check_port("port", self.port)

    def __repr__(self) -> str:
        return _redacted_repr(self, frozenset({"auth_key"}))

    __str__ = __repr__
