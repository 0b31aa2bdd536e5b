"""Peers and rows: the column layouts of the peers tables, `Peer`s built from trusted values, the
rows a batch writes, and lookup rows folded back into peers."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from tgpersist.domain import Peer, PeerType
from tgpersist.domain.peer import CHANNEL_OFFSET, PeerKind

PEER_FIELDS = (
    "access_hash",
    "first_name",
    "last_name",
    "title",
    "phone_number",
    "is_bot",
    "photo_id",
    "language",
)
#: Column order of the rows `save_many` writes (session_name and updated_at are shared by a batch).
PEER_SHARED = ("session_name", "updated_at")
PEER_COLUMNS = (
    "peer_id",
    "type",
    "access_hash",
    "first_name",
    "last_name",
    "title",
    "phone_number",
    "phone_key",
    "is_bot",
    "photo_id",
    "language",
    "username",
    "username_key",
)
#: Columns of the usernames table (a peer's usernames other than its primary one).
NAME_COLUMNS = ("session_name", "username_key", "peer_id", "username", "position")
#: Column order of the rows lookups read (one row per extra username, LEFT JOIN).
READ_COLUMNS = ("peer_id", "type", *PEER_FIELDS, "updated_at", "username", "extra", "position")

_TYPES = {t.value: t for t in PeerType}
#: Each type's id space, by type value (a str key hashes faster than an Enum member).
_SPACE = {t.value: t.kind for t in PeerType}

# -- Peer objects from trusted values ---------------------------------------------------------------
_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Peer))
_SETTERS = tuple(getattr(Peer, name).__set__ for name in _FIELD_NAMES)
_KNOWN_FIELDS = ("id", "type", "access_hash", "username", "usernames", *PEER_FIELDS[1:], "updated_at")
#: The fast path sets every field itself, so it is used only while `Peer` has exactly these fields.
_FAST = _FIELD_NAMES == _KNOWN_FIELDS


def trusted_peer(*values: Any) -> Peer:
    """A `Peer` from field values (in `Peer`'s field order) that were validated before, such as rows
    read back from the store or a copy of a constructed `Peer`: skips `__post_init__` (~10x faster)."""
    if not _FAST:
        return Peer(**dict(zip(_FIELD_NAMES, values, strict=True)))
    peer: Peer = object.__new__(Peer)
    for setter, value in zip(_SETTERS, values, strict=True):
        setter(peer, value)
    return peer


def as_stored(peer: Peer, updated_at: datetime) -> Peer:
    """`peer` as the database now holds it: the same values, stamped with the write's time, and the
    primary username spelled as in `usernames` (the row it is stored in)."""
    username = peer.username
    if username is not None and username not in peer.usernames:
        key = username.lower()
        username = next(name for name in peer.usernames if name.lower() == key)
    return trusted_peer(
        peer.id,
        peer.type,
        peer.access_hash,
        username,
        peer.usernames,
        peer.first_name,
        peer.last_name,
        peer.title,
        peer.phone_number,
        peer.is_bot,
        peer.photo_id,
        peer.language,
        updated_at,
    )


def dialog_id_of(peer: Peer) -> int:
    """`peer.dialog_id` without re-validating the (already validated) bare id."""
    kind = _SPACE[peer.type._value_]
    if kind is PeerKind.USER:
        return peer.id
    if kind is PeerKind.CHAT:
        return -peer.id
    return -CHANNEL_OFFSET - peer.id


def phone_digits(phone: str) -> str:
    """`phone_key` of a phone number a `Peer` already validated (digits, an optional +, spaces), fast."""
    return phone.replace(" ", "").removeprefix("+")


def _bare_id(dialog_id: int) -> int:
    if dialog_id > 0:
        return dialog_id
    return -dialog_id if dialog_id >= -(CHANNEL_OFFSET - 1) else -dialog_id - CHANNEL_OFFSET


def peer_row(dialog_id: int, peer: Peer, username: str | None, key: str | None) -> tuple[Any, ...]:
    """The `PEER_COLUMNS` row of `peer`, with the primary username (and its key) it is stored with."""
    phone = peer.phone_number
    return (
        dialog_id,
        peer.type._value_,
        peer.access_hash,
        peer.first_name,
        peer.last_name,
        peer.title,
        phone,
        None if phone is None else phone_digits(phone),
        peer.is_bot,
        peer.photo_id,
        peer.language,
        username,
        key,
    )


def _usernames(primary: str | None, extras: builtins.list[tuple[int, str]]) -> tuple[str, ...]:
    """`Peer.usernames` from the stored primary and the other usernames with their positions: the
    primary goes to the one position the others leave free."""
    if not extras:
        return () if primary is None else (primary,)
    extras.sort()
    names = [name for _, name in extras]
    if primary is not None:
        free = next((i for i, (position, _) in enumerate(extras) if position != i), len(extras))
        names.insert(free, primary)
    return tuple(names)


def fold(rows: Iterable[Sequence[Any]]) -> builtins.list[Peer]:
    """Fold lookup rows (`READ_COLUMNS`, one per extra username, ordered by peer) into peers."""
    result: builtins.list[Peer] = []
    current: Sequence[Any] | None = None
    extras: builtins.list[tuple[int, str]] = []

    def flush() -> None:
        if current is not None:
            (peer_id, kind, access_hash, first, last, title, phone, is_bot, photo, language, updated) = (
                current[:11]
            )
            primary = current[11]
            result.append(
                trusted_peer(
                    _bare_id(peer_id),
                    _TYPES[kind],
                    access_hash,
                    primary,
                    _usernames(primary, extras),
                    first,
                    last,
                    title,
                    phone,
                    is_bot,
                    photo,
                    language,
                    updated,
                )
            )

    for row in rows:
        if current is None or row[0] != current[0]:
            flush()
            current, extras = row, []
        if row[12] is not None:
            extras.append((row[13], row[12]))
    flush()
    return result
