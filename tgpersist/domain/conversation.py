"""`Conversation`: the dialog-flow state of one chat and user (and optionally one thread)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tgpersist import validation as v
from tgpersist.errors import InvalidArgument

MAX_DATA = 1024 * 1024


def encode_data(data: Any) -> tuple[str | None, bytes | None]:
    """(kind, encoded) for storage: raw bytes stay bytes, anything else must be JSON-able."""
    if data is None:
        return None, None
    if isinstance(data, bytes | bytearray | memoryview):
        return "bytes", v.check_bytes("data", data, MAX_DATA)
    v.check_json("data", data, max_chars=MAX_DATA)
    try:
        encoded = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument("data", f"is neither bytes nor JSON-serialisable ({exc})") from None
    try:
        raw = encoded.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument("data", "contains a string that is not valid Unicode") from None
    if len(raw) > MAX_DATA:
        raise InvalidArgument("data", f"encodes to {len(raw)} bytes, the limit is {MAX_DATA}")
    return "json", raw


def decode_data(kind: str | None, raw: bytes | None) -> Any:
    if kind is None or raw is None:
        return None
    if kind == "bytes":
        return bytes(raw)
    return json.loads(raw)


@dataclass(frozen=True, slots=True)
class Conversation:
    """State of a conversation keyed by (chat_id, user_id, thread_id, namespace).

    `namespace` keeps apart flows that share a chat and user (aiogram destinies, business connections).
    `data` is bytes or any JSON-able value (JSON turns tuples into lists and keys into strings).
    """

    chat_id: int
    user_id: int
    thread_id: int | None = None
    namespace: str = ""
    name: str | None = None
    step: str | None = None
    data: Any = None
    created_at: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        v.check_int("chat_id", self.chat_id)
        v.check_int("user_id", self.user_id)
        if self.thread_id is not None:
            v.check_int("thread_id", self.thread_id, 1)
        v.check_text("namespace", self.namespace, v.MAX_NAME)
        v.check_optional_text("name", self.name, v.MAX_NAME)
        v.check_optional_text("step", self.step, v.MAX_TEXT)
        encode_data(self.data)
        if self.expires_at is not None:
            object.__setattr__(self, "expires_at", v.check_datetime("expires_at", self.expires_at))
