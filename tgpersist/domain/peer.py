"""`Peer` (a cached user, chat or channel with its access hash) and the Bot API dialog id helpers.

Peers are keyed by bare id and type. The "marked" Bot API dialog id folds both into one integer, as
grammers' `PeerId` does: users `id`, basic chats `-id`, channels `-1000000000000 - id`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from tgpersist import validation as v
from tgpersist.errors import InvalidArgument

CHANNEL_OFFSET = 1_000_000_000_000
MAX_CHAT_ID = CHANNEL_OFFSET - 1
MAX_CHANNEL_ID = v.INT64_MAX - CHANNEL_OFFSET


class PeerKind(enum.Enum):
    """The id space a peer lives in: Telegram reuses the same bare number across these."""

    USER = "user"
    CHAT = "chat"
    CHANNEL = "channel"


class PeerType(enum.Enum):
    """What a peer is; the kinds Pyrogram/Kurigram distinguish, grouped into three id spaces."""

    USER = "user"
    BOT = "bot"
    CHAT = "chat"
    CHANNEL = "channel"
    SUPERGROUP = "supergroup"
    FORUM = "forum"
    DIRECT = "direct"
    COMMUNITY = "community"

    @property
    def kind(self) -> PeerKind:
        if self in (PeerType.USER, PeerType.BOT):
            return PeerKind.USER
        if self is PeerType.CHAT:
            return PeerKind.CHAT
        return PeerKind.CHANNEL


_MAX_BARE = {PeerKind.USER: v.INT64_MAX, PeerKind.CHAT: MAX_CHAT_ID, PeerKind.CHANNEL: MAX_CHANNEL_ID}


def check_bare_id(field_name: str, bare_id: int, kind: PeerKind) -> int:
    return v.check_int(field_name, bare_id, 1, _MAX_BARE[kind])


def to_dialog_id(bare_id: int, kind: PeerKind | PeerType) -> int:
    """The Bot API ("marked") id of a bare id in the given id space."""
    space = kind.kind if isinstance(kind, PeerType) else kind
    check_bare_id("id", bare_id, space)
    if space is PeerKind.USER:
        return bare_id
    if space is PeerKind.CHAT:
        return -bare_id
    return -CHANNEL_OFFSET - bare_id


def from_dialog_id(dialog_id: int) -> tuple[int, PeerKind]:
    """Split a Bot API ("marked") id into its bare id and id space."""
    v.check_int("peer_id", dialog_id)
    if dialog_id > 0:
        return dialog_id, PeerKind.USER
    if dialog_id == 0:
        raise InvalidArgument("peer_id", "0 is not a peer id")
    if dialog_id >= -MAX_CHAT_ID:
        return -dialog_id, PeerKind.CHAT
    return -dialog_id - CHANNEL_OFFSET, PeerKind.CHANNEL


@dataclass(frozen=True, slots=True)
class Peer:
    """A cached peer. `usernames` lists every active username and always contains `username` when set."""

    id: int
    type: PeerType
    access_hash: int | None = None
    username: str | None = None
    usernames: tuple[str, ...] = ()
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    phone_number: str | None = None
    is_bot: bool | None = None
    photo_id: int | None = None
    language: str | None = None
    updated_at: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.type, PeerType):
            try:
                object.__setattr__(self, "type", PeerType(self.type))
            except ValueError:
                raise InvalidArgument("type", f"{self.type!r} is not a PeerType") from None
        check_bare_id("id", self.id, self.type.kind)
        v.check_optional_int("access_hash", self.access_hash)
        if isinstance(self.usernames, str) or not isinstance(self.usernames, tuple | list):
            raise InvalidArgument("usernames", "expected a tuple of strings")
        names = [v.check_username("usernames", name) for name in self.usernames]
        if self.username is not None:
            v.check_username("username", self.username)
            if self.username.lower() not in {n.lower() for n in names}:
                names.insert(0, self.username)
        seen: set[str] = set()
        for name in names:
            if name.lower() in seen:
                raise InvalidArgument("usernames", f"{name!r} appears twice (usernames ignore case)")
            seen.add(name.lower())
        object.__setattr__(self, "usernames", tuple(names))
        v.check_optional_text("first_name", self.first_name)
        v.check_optional_text("last_name", self.last_name)
        v.check_optional_text("title", self.title)
        if self.phone_number is not None:
            v.check_phone("phone_number", self.phone_number)
        v.check_optional_bool("is_bot", self.is_bot)
        if self.type is PeerType.BOT:
            if self.is_bot is False:
                raise InvalidArgument("is_bot", "is False but type is BOT")
            object.__setattr__(self, "is_bot", True)
        elif self.is_bot:
            if self.type is not PeerType.USER:
                raise InvalidArgument("is_bot", f"only users can be bots, type is {self.type.name}")
            object.__setattr__(self, "type", PeerType.BOT)
        v.check_optional_int("photo_id", self.photo_id)
        v.check_optional_text("language", self.language, 32)

    @property
    def dialog_id(self) -> int:
        """The Bot API ("marked") id of this peer."""
        return to_dialog_id(self.id, self.type)
