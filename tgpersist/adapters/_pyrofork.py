"""Pyrofork's side of `PyrogramStorage`: its `Storage` class, (peer id, username) pairs for
`update_usernames`, and its tuple-based `update_state` (get, set, delete) and `remove_state`.

Update state 0 is the account's `UpdateState`, every other id a channel's marked id whose pts is kept
(`ChannelState`). Within a session every state reads back exactly as written; after reopening, state 0
reads back with its None fields as 0 except qts and seq (None when 0, as Pyrofork's client never sets
them), and channel states as (id, pts, None, None, None): tgpersist keeps no date for a channel.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from pyrogram.storage.sqlite_storage import get_input_peer
from pyrogram.storage.storage import Storage

from tgpersist.adapters._primary_usernames import PrimaryUsernameStorage
from tgpersist.adapters._pyrogram_family import _UNSET, FORK_TYPES
from tgpersist.adapters._write_behind import Batch
from tgpersist.domain import ChannelState, Peer, PeerKind, Session, UpdateState
from tgpersist.domain.peer import to_dialog_id
from tgpersist.errors import InvalidArgument

#: Pyrofork's update state row: (id, pts, qts, date, seq).
StateRow = tuple[int, int | None, int | None, int | None, int | None]


class PyrogramStorage(PrimaryUsernameStorage, Storage):  # type: ignore[misc]
    """A Pyrofork storage engine for session `name` of `store` (`storage=` of its `Client`)."""

    def _fork_input_peer(self, peer_id: int, access_hash: Any, peer_type: str) -> Any:
        return get_input_peer(peer_id, access_hash, peer_type)

    def _reset(self, session: Session | None) -> None:
        super()._reset(session)
        self._states: dict[int, StateRow] = {}

    def _load_states(self, state: UpdateState | None, channels: list[ChannelState]) -> None:
        if state is not None:
            self._states[0] = (0, state.pts, state.qts or None, state.date, state.seq or None)
        for channel in channels:
            marked = to_dialog_id(channel.channel_id, PeerKind.CHANNEL)
            self._states[marked] = (marked, channel.pts, None, None, None)

    async def update_usernames(self, usernames: Iterable[tuple[int, str]]) -> None:  # type: ignore[override]
        """Each peer in `usernames` gets exactly the names given for it; a name moves to its last peer."""
        pairs = list(usernames)
        for pair in pairs:
            if not (isinstance(pair, tuple | list) and len(pair) == 2 and isinstance(pair[1], str | None)):
                raise InvalidArgument("usernames", f"expected (peer id, username) pairs, got {pair!r}")
        given: dict[int, list[str | None]] = {peer_id: [] for peer_id, _ in pairs}
        for peer_id, name in pairs:
            given[peer_id].append(name)
        now = time.time()
        changed: dict[int, Peer] = {}
        for peer_id, names in given.items():
            kept = tuple(self._valid_usernames(peer_id, names))
            for other, extras in list(self._extras.items()):
                if other != peer_id and set(extras) & set(kept):
                    self._extras[other] = tuple(n for n in extras if n not in kept)
            self._extras[peer_id] = kept
            for name in kept:
                self._name_seen[name] = now
            peer = self._peers.get(peer_id)
            if peer is not None:  # else kept for when the peer is stored, as Pyrofork's table does
                changed[peer_id] = self._with_usernames(
                    peer_id, peer.access_hash or 0, self._fork_type(peer), peer.phone_number, peer.username
                )
        for peer_id, peer in changed.items():
            self._remember(peer, self._seen[peer_id])
        if changed:
            self._writer.submit(Batch("peers", self._save_peers, changed))

    async def update_state(self, value: Any = _UNSET) -> Any:
        """All states as (id, pts, qts, date, seq) by id (no argument); delete one (an id); or set one."""
        if value is _UNSET:
            return [self._states[i] for i in sorted(self._states)]
        if isinstance(value, int) and not isinstance(value, bool):
            return await self.remove_state(value)
        if not (isinstance(value, tuple | list) and len(value) == 5):
            raise InvalidArgument("update_state", "expected (id, pts, qts, date, seq)")
        state_id, pts, qts, date, seq = value
        row: StateRow = (state_id, pts, qts, date, seq)
        if state_id == 0:
            account = UpdateState(pts or 0, qts or 0, date or 0, seq or 0)
            self._writer.submit(Batch("update state", self._save_state, {0: account}))
        else:
            channel = ChannelState(self._channel_id(state_id), pts or 0)
            self._writer.submit(Batch("channel states", self._save_channels, {channel.channel_id: channel}))
        self._states[state_id] = row
        return None

    async def remove_state(self, chat_id: int) -> None:
        """Forget the update state `chat_id` (0: the account's), in memory and in the database."""
        self._forget_states([chat_id])
        self._states.pop(chat_id, None)

    @staticmethod
    def _fork_type(peer: Peer) -> str:
        return FORK_TYPES[peer.type]
