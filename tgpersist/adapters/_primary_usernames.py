"""The Pyrofork/Hydrogram side of the Pyrogram family: peers arrive as 5-tuples with their primary
username, and a username is looked up as their `SQLiteStorage` does (the peer's own username first,
then Pyrofork's separate usernames table).

Stored as tgpersist peers: `Peer.username` is the primary username, `Peer.usernames` the primary plus
the names `update_usernames` gave (Pyrofork sends every username of a peer that has several).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from tgpersist.adapters._pyrogram_family import FamilyStorage
from tgpersist.domain import Peer, Session

#: An `update_peers` row: (marked id, access hash, type name, lower-case username, phone number).
PeerRow = tuple[int, int, str, str | None, str | None]


class PrimaryUsernameStorage(FamilyStorage):
    """`update_peers` with 5-tuples and the forks' two-step username lookup."""

    def _reset(self, session: Session | None) -> None:
        super()._reset(session)
        self._extras: dict[int, tuple[str, ...]] = {}  # marked id -> names from update_usernames
        self._name_seen: dict[str, float] = {}  # username -> when update_usernames last stored it

    def _remember(self, peer: Peer, seen: float) -> None:
        super()._remember(peer, seen)
        if peer.dialog_id not in self._extras:  # loaded from the database
            others = tuple(name for name in peer.usernames if name != peer.username)
            self._extras[peer.dialog_id] = peer.usernames if len(peer.usernames) > 1 else others
            for name in self._extras[peer.dialog_id]:
                self._name_seen.setdefault(name, seen)

    async def update_peers(self, peers: Iterable[PeerRow]) -> None:
        """Insert or replace peers by marked id; the usernames `update_usernames` gave are kept."""
        changed: dict[int, Peer] = {}
        for peer_id, access_hash, peer_type, username, phone_number in peers:
            changed.pop(peer_id, None)
            changed[peer_id] = self._with_usernames(peer_id, access_hash, peer_type, phone_number, username)
        self._store_peers(changed, time.time())

    def _with_usernames(
        self, peer_id: int, access_hash: int, peer_type: str, phone_number: str | None, username: str | None
    ) -> Peer:
        primary = self._valid_usernames(peer_id, [username])
        names = self._valid_usernames(peer_id, [*primary, *self._extras.get(peer_id, ())])
        return self._peer_of(
            peer_id,
            access_hash,
            peer_type,
            phone_number,
            username=primary[0] if primary else None,
            usernames=tuple(names),
        )

    async def get_peer_by_username(self, username: str) -> Any:
        owner = self._by_username.get(username.lower()) if isinstance(username, str) else None
        peer = self._peers.get(owner) if owner is not None else None
        if peer is None or owner is None:
            raise KeyError(f"Username not found: {username}")
        if peer.username != username:  # not its own: the usernames table (Pyrofork), matched exactly
            if username not in self._extras.get(owner, ()):
                raise KeyError(f"Username not found: {username}")
            if self._expired(self._name_seen.get(username, self._seen[owner])):
                raise KeyError(f"Username expired: {username}")
        if self._expired(self._seen[owner]):
            raise KeyError(f"Username expired: {username}")
        return self._input_peer(peer)
