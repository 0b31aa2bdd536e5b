"""Update state (`UpdateState`, `ChannelState`) and the durable queue item (`DurableUpdate`)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from tgpersist import validation as v

MAX_PAYLOAD = 4 * 1024 * 1024
MAX_ERROR = 4096


@dataclass(frozen=True, slots=True)
class UpdateState:
    """The account-wide update state Telegram's getDifference works from."""

    pts: int = 0
    qts: int = 0
    date: int = 0
    seq: int = 0

    def __post_init__(self) -> None:
        for name in ("pts", "qts", "date", "seq"):
            v.check_int(name, getattr(self, name), 0, v.INT32_MAX * 2 + 1)


@dataclass(frozen=True, slots=True)
class ChannelState:
    """The pts of one channel; `channel_id` is the bare positive id, as Telethon stores it."""

    channel_id: int
    pts: int

    def __post_init__(self) -> None:
        v.check_int("channel_id", self.channel_id, 1)
        v.check_int("pts", self.pts, 0, v.INT32_MAX * 2 + 1)


class UpdateStatus(enum.Enum):
    PENDING = "pending"
    DEAD = "dead"


def new_update_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class DurableUpdate:
    """An update received but not yet handled. Enqueueing the same `id` twice stores it once."""

    payload: bytes
    id: str = field(default_factory=new_update_id)
    attempts: int = 0
    last_error: str | None = None
    status: UpdateStatus = UpdateStatus.PENDING
    created_at: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)
    available_at: datetime | None = field(default=None, compare=False)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        v.check_name("id", self.id)
        object.__setattr__(self, "payload", v.check_bytes("payload", self.payload, MAX_PAYLOAD))
        v.check_int("attempts", self.attempts, 0, v.INT32_MAX)
        v.check_optional_text("last_error", self.last_error, MAX_ERROR)
        if self.lease_owner is not None:
            v.check_name("lease_owner", self.lease_owner)
