"""Kurigram's side of `PyrogramStorage`: its `Storage` ABC, 4-tuple peers, username lists, `UpdateState`.

Kurigram's marked peer ids are our Bot API dialog ids, its peer types map onto `PeerType` by name
("group" is `PeerType.CHAT`). Update state 0 is the account's `UpdateState` (fields never set read
back as 0); every other state id is a channel's marked id, of which the pts is kept (`ChannelState`,
read back with qts, date and seq None). Usernames keep Kurigram's 8-hour lifetime (`USERNAME_TTL`),
counted from the peer's last `update_peers`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, ClassVar

from pyrogram.storage.sqlite_storage import get_input_peer
from pyrogram.storage.storage import Storage
from pyrogram.storage.storage import UpdateState as PyroUpdateState

from tgpersist.adapters._pyrogram_family import _UNSET, FamilyStorage
from tgpersist.adapters._write_behind import Batch
from tgpersist.domain import ChannelState, Peer, PeerKind, Session, UpdateState
from tgpersist.domain.peer import to_dialog_id


class PyrogramStorage(FamilyStorage, Storage):
    """A Kurigram storage engine for session `name` of `store` (`storage_engine=` of its `Client`)."""

    FIELDS: ClassVar[tuple[str, ...]] = ("dc_id", "server_address", "port", *FamilyStorage.FIELDS[1:])

    def _fork_input_peer(self, peer_id: int, access_hash: Any, peer_type: str) -> Any:
        return get_input_peer(peer_id, access_hash, peer_type)

    def _reset(self, session: Session | None) -> None:
        super()._reset(session)
        self._states: dict[int, PyroUpdateState] = {}

    def _load_states(self, state: UpdateState | None, channels: list[ChannelState]) -> None:
        if state is not None:
            self._states[0] = PyroUpdateState(0, state.pts, state.qts, state.date, state.seq)
        for channel in channels:
            marked = to_dialog_id(channel.channel_id, PeerKind.CHANNEL)
            self._states[marked] = PyroUpdateState(marked, channel.pts, None, None, None)

    # -- peers ---------------------------------------------------------------------------------------------
    async def update_peers(self, peers: Iterable[tuple[int, int, str, str | None]]) -> None:
        """Insert or replace peers by marked id; a replaced peer keeps its usernames (as in Kurigram)."""
        changed: dict[int, Peer] = {}
        for peer_id, access_hash, peer_type, phone_number in peers:
            peer = self._peer_of(peer_id, access_hash, peer_type, phone_number)
            changed.pop(peer_id, None)
            changed[peer_id] = peer
        self._store_peers(changed, time.time())

    async def update_usernames(self, usernames: Iterable[tuple[int, list[str | None]]]) -> None:
        """Replace the usernames of each peer; the first becomes its primary username.

        Usernames of a peer that is not stored are ignored (Kurigram would keep them, unreachable until
        the peer is stored).
        """
        changed: dict[int, Peer] = {}
        for peer_id, names in usernames:
            peer = self._peers.get(peer_id)
            if peer is None:
                continue
            kept = self._valid_usernames(peer_id, names)
            updated = replace(peer, username=kept[0] if kept else None, usernames=tuple(kept))
            self._remember(updated, self._seen[peer_id])
            changed.pop(peer_id, None)
            changed[peer_id] = self._peers[peer_id]
        if changed:
            self._writer.submit(Batch("peers", self._save_peers, changed))

    async def get_peer_by_username(self, username: str) -> Any:
        owner = self._by_username.get(username.lower()) if isinstance(username, str) else None
        if owner is None or username not in self._peers[owner].usernames:  # matched exactly, as Kurigram
            raise KeyError(f"Username not found: {username}")
        if self._expired(self._seen[owner]):
            raise KeyError(f"Username expired: {username}")
        return self._input_peer(self._peers[owner])

    # -- update state ----------------------------------------------------------------------------------------
    async def get_update_states(self, ids: int | Iterable[int] | None = None) -> list[PyroUpdateState]:
        """The states with the given ids (all if None), oldest date first (no date first), as Kurigram."""
        if ids is None:
            states = list(self._states.values())
        else:
            wanted = (ids,) if isinstance(ids, int) else tuple(ids)
            states = [self._states[i] for i in sorted(set(wanted)) if i in self._states]
        return sorted(states, key=lambda s: (s.date is not None, s.date or 0, s.id))

    async def set_update_state(self, update_state: PyroUpdateState | Iterable[PyroUpdateState]) -> None:
        """Insert or update states; a None field keeps the stored value (Kurigram's COALESCE)."""
        states = [update_state] if isinstance(update_state, PyroUpdateState) else list(update_state)
        account: UpdateState | None = None
        channels: dict[int, ChannelState] = {}
        merged: list[PyroUpdateState] = []
        for new in states:
            old = self._states.get(new.id)

            def pick(field: str, new: PyroUpdateState = new, old: PyroUpdateState | None = old) -> Any:
                value = getattr(new, field)
                return getattr(old, field) if value is None and old is not None else value

            if new.id == 0:
                account = UpdateState(*(pick(f) or 0 for f in ("pts", "qts", "date", "seq")))
                merged.append(PyroUpdateState(0, account.pts, account.qts, account.date, account.seq))
            else:
                channel = ChannelState(self._channel_id(new.id), pick("pts") or 0)
                channels[channel.channel_id] = channel
                merged.append(PyroUpdateState(new.id, channel.pts, None, None, None))
        for state in merged:
            self._states[state.id] = state
        if account is not None:
            self._writer.submit(Batch("update state", self._save_state, {0: account}))
        if channels:
            self._writer.submit(Batch("channel states", self._save_channels, channels))

    async def delete_update_state(self, state_id: int | Iterable[int]) -> None:
        """Forget states: channel states and the account-wide state (0), in memory and in the database.

        Every id is checked before anything is forgotten: one invalid id changes nothing.
        """
        ids = (state_id,) if isinstance(state_id, int) else tuple(state_id)
        self._forget_states(ids)
        for marked in ids:
            self._states.pop(marked, None)

    # -- session fields only Kurigram keeps ------------------------------------------------------------------
    async def server_address(self, value: str | type[object] | None = _UNSET) -> Any:
        return await self._accessor("server_address", value)

    async def port(self, value: int | type[object] | None = _UNSET) -> Any:
        return await self._accessor("port", value)
