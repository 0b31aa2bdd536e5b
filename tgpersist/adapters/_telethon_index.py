"""`EntityIndex`: the peers a `TelethonSession` holds in memory, and Telethon's lookups over them.

Telethon looks entities up synchronously by marked id, username, phone and display name; this keeps
those indexes consistent as peers change (a username taken by another peer leaves its old owner).
"""

from __future__ import annotations

from dataclasses import replace

from tgpersist.adapters._telethon_values import Row, entity_row
from tgpersist.domain import Peer


class EntityIndex:
    """Peers by marked id, with their Telethon rows and the username, phone and name indexes."""

    def __init__(self) -> None:
        self._peers: dict[int, Peer] = {}
        self._rows: dict[int, Row] = {}
        self._by_username: dict[str, int] = {}
        self._by_phone: dict[str, set[int]] = {}
        self._by_name: dict[str, set[int]] = {}

    def peer(self, marked: int) -> Peer | None:
        return self._peers.get(marked)

    def has(self, marked: int) -> bool:
        return marked in self._rows

    def row(self, marked: int) -> Row | None:
        """The row Telethon's own sessions would hold for the entity `marked`, if it is known."""
        return self._rows.get(marked)

    def access_hash(self, marked: int) -> int:
        """The access hash Telethon's row holds for the entity `marked` (which must be known)."""
        return self._rows[marked][1]

    def with_username(self, username: str) -> int | None:
        """The marked id of the peer that has `username` (lower case, as Telethon asks), if any."""
        return self._by_username.get(username)

    def with_phone(self, phone: str) -> set[int] | None:
        return self._by_phone.get(phone)

    def with_name(self, name: str) -> set[int] | None:
        return self._by_name.get(name)

    def remember(self, peer: Peer) -> None:
        """Put `peer` in memory and its indexes; a username it carries is taken from any other peer."""
        marked = peer.dialog_id
        self._unindex(marked)
        self._peers[marked] = peer
        row = self._rows[marked] = entity_row(peer)
        for name in peer.usernames:
            key = name.lower()
            owner = self._by_username.get(key)
            if owner is not None and owner != marked:
                self._take_username(owner, key)
            self._by_username[key] = marked
        _, _, _, phone, display = row
        if phone:
            self._by_phone.setdefault(phone, set()).add(marked)
        if display:
            self._by_name.setdefault(display, set()).add(marked)

    def _unindex(self, marked: int) -> None:
        peer, row = self._peers.get(marked), self._rows.get(marked)
        if peer is None or row is None:
            return
        for name in peer.usernames:
            if self._by_username.get(name.lower()) == marked:
                del self._by_username[name.lower()]
        _, _, _, phone, display = row
        for index, key in ((self._by_phone, phone), (self._by_name, display)):
            if key and marked in index.get(key, ()):
                index[key].discard(marked)
                if not index[key]:
                    del index[key]

    def _take_username(self, owner: int, key: str) -> None:
        """`key` moved to another peer: drop it from `owner` (the database does the same on save)."""
        peer = self._peers[owner]
        primary = peer.username if peer.username and peer.username.lower() != key else None
        kept = tuple(name for name in peer.usernames if name.lower() != key)
        self._peers[owner] = replace(peer, username=primary, usernames=kept)
        self._rows[owner] = entity_row(self._peers[owner])
