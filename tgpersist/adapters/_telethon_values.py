"""Telethon's entities and TL objects as tgpersist's `Peer` and update states, one into the other.

Pure mapping, no memory or database: `TelethonSession` (in `telethon.py`) keeps state and writes.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from telethon import utils
from telethon.tl import TLObject, types

from tgpersist.domain import Peer, PeerKind, PeerType, UpdateState
from tgpersist.domain.peer import from_dialog_id
from tgpersist.errors import InvalidArgument

log = logging.getLogger("tgpersist.adapters.telethon")  # the adapter's own logger, for its users

#: Telethon's entity row: (marked id, access hash, lower-case username, phone, display name).
Row = tuple[int, int, str | None, str | None, str | None]

EPOCH = dt.datetime.fromtimestamp(0, tz=dt.UTC)

#: Community entities (only in recent layers, so looked up rather than imported).
_COMMUNITIES = tuple(
    getattr(types, name) for name in ("Community", "CommunityForbidden") if hasattr(types, name)
)

#: Peer fields that are dropped (rather than losing the whole entity) when Telegram sends a value
#: tgpersist does not accept, e.g. a phone number with letters in it.
_DROPPABLE: dict[str, dict[str, Any]] = {
    "phone_number": {"phone_number": None},
    "username": {"username": None, "usernames": ()},
    "usernames": {"username": None, "usernames": ()},
    "first_name": {"first_name": None},
    "last_name": {"last_name": None},
    "title": {"title": None},
}


def display_name(peer: Peer) -> str | None:
    """The name Telethon keeps for an entity (`utils.get_display_name`), rebuilt from a stored peer."""
    if peer.type.kind is PeerKind.USER:
        return _join_names(peer.first_name, peer.last_name)
    return peer.title or None


def _join_names(first: str | None, last: str | None) -> str | None:
    if first and last:
        return f"{first} {last}"
    return first or last or None


def entity_row(peer: Peer) -> Row:
    """The row Telethon's own sessions would hold for `peer`."""
    access_hash = 0 if peer.type.kind is PeerKind.CHAT else (peer.access_hash or 0)
    username = peer.username.lower() if peer.username else None
    return peer.dialog_id, access_hash, username, peer.phone_number, display_name(peer)


def _peer_type(entity: Any, kind: PeerKind, existing: Peer | None) -> PeerType:
    """The most precise type the entity tells; else the stored one; else the plain type of its id space."""
    if kind is PeerKind.CHAT:
        return PeerType.CHAT
    if kind is PeerKind.USER and isinstance(entity, types.User):
        return PeerType.BOT if entity.bot else PeerType.USER
    if kind is PeerKind.CHANNEL and isinstance(entity, types.Channel):
        if getattr(entity, "monoforum", False):
            return PeerType.DIRECT
        if entity.broadcast:
            return PeerType.CHANNEL
        if entity.forum:
            return PeerType.FORUM
        return PeerType.SUPERGROUP if entity.megagroup else PeerType.CHANNEL
    if kind is PeerKind.CHANNEL and isinstance(entity, types.ChannelForbidden):
        return PeerType.CHANNEL if entity.broadcast else PeerType.SUPERGROUP
    if kind is PeerKind.CHANNEL and isinstance(entity, _COMMUNITIES):
        return PeerType.COMMUNITY
    if existing is not None and existing.type.kind is kind:
        return existing.type
    return PeerType.USER if kind is PeerKind.USER else PeerType.CHANNEL


def peer_values(entity: Any, row: Row, existing: Peer | None) -> dict[str, Any]:
    """Every field of the `Peer` that stores `entity` (whose Telethon row is `row`)."""
    marked, access_hash, username, phone, name = row
    bare, kind = from_dialog_id(marked)
    peer_type = _peer_type(entity, kind, existing)
    original = getattr(entity, "username", None)
    if isinstance(original, str) and original.lower() == username:
        username = original  # Telethon keeps it in lower case; we keep its case
    first = last = title = None
    if kind is PeerKind.USER:
        if isinstance(entity, types.User):
            first, last = entity.first_name, entity.last_name
        if _join_names(first, last) != name:
            first, last = name, None
    else:
        title = name
    same_kind = existing is not None and existing.type.kind is kind
    return {
        "id": bare,
        "type": peer_type,
        "access_hash": None if kind is PeerKind.CHAT else access_hash,
        "username": username,
        "usernames": (username,) if username else (),
        "first_name": first,
        "last_name": last,
        "title": title,
        "phone_number": phone,
        "is_bot": True if peer_type is PeerType.BOT else None,
        "photo_id": existing.photo_id if same_kind and existing is not None else None,
        "language": existing.language if same_kind and existing is not None else None,
    }


def valid_peer(values: dict[str, Any]) -> Peer | None:
    """A `Peer` from `values`, dropping optional fields tgpersist rejects; None if that is not enough."""
    for _ in range(len(_DROPPABLE) + 1):
        try:
            return Peer(**values)
        except InvalidArgument as error:
            reset = _DROPPABLE.get(error.field)
            if reset is None or all(values.get(k) == v for k, v in reset.items()):
                break
            log.debug("dropping %s of peer %s: %s", error.field, values.get("id"), error.problem)
            values.update(reset)
    log.warning("not storing entity %s of type %s", values.get("id"), values.get("type"))
    return None


def entities_in(tlo: Any) -> list[Any]:
    """The users and chats inside a TL object (or a list of them), as `MemorySession` finds them."""
    if not isinstance(tlo, TLObject) and utils.is_list_like(tlo):
        return list(tlo)
    entities: list[Any] = []
    if hasattr(tlo, "user"):
        entities.append(tlo.user)
    if hasattr(tlo, "chat"):
        entities.append(tlo.chat)
    if hasattr(tlo, "chats") and utils.is_list_like(tlo.chats):
        entities.extend(tlo.chats)
    if hasattr(tlo, "users") and utils.is_list_like(tlo.users):
        entities.extend(tlo.users)
    return entities


def account_state(state: UpdateState) -> Any:
    """Telethon's `updates.State` for the stored account-wide update state."""
    return types.updates.State(
        state.pts, state.qts, dt.datetime.fromtimestamp(state.date, tz=dt.UTC), state.seq, unread_count=0
    )


def channel_state(pts: int) -> Any:
    """Telethon's `updates.State` for a channel, of which only pts is stored."""
    return types.updates.State(pts, 0, EPOCH, 0, unread_count=0)


def epoch_seconds(date: Any) -> int:
    """Unix seconds of a Telethon state's date (a datetime, or already an int)."""
    if isinstance(date, dt.datetime):
        return int(date.timestamp())
    if isinstance(date, int) and not isinstance(date, bool):
        return date
    raise InvalidArgument("date", f"expected a datetime, got {type(date).__name__}")
