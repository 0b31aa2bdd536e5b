"""Pyrogram/Kurigram on tgpersist: `PyrogramStorage`, a drop-in `pyrogram.storage.Storage`.

    client = Client("alice", api_id=..., api_hash=..., storage_engine=PyrogramStorage(store, "alice"))

`open()` takes the session lease (unless `lease=False`) and loads the account into memory; lookups are
answered from memory with the same results and the same `KeyError`s as Kurigram's `SQLiteStorage`.
Peers and update states are written behind, in order, by one background task; the session setters
(`dc_id(2)`, `auth_key(...)`, ...) and `save()` wait until everything queued is stored, as Kurigram
commits them at once. `close()` stores everything still queued and releases the lease.

Mapping: Kurigram's marked peer ids are our Bot API dialog ids, its peer types map onto `PeerType` by
name ("group" is `PeerType.CHAT`). Update state 0 is the account's `UpdateState` (fields never set read
back as 0); every other state id is a channel's marked id, of which the pts is kept (`ChannelState`,
read back with qts, date and seq None). Usernames keep Kurigram's 8-hour lifetime (`USERNAME_TTL`),
counted from the peer's last `update_peers`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from tgpersist.adapters import require

require("pyrogram", "pyrogram")

from pyrogram.storage.sqlite_storage import get_input_peer  # noqa: E402
from pyrogram.storage.storage import Storage  # noqa: E402
from pyrogram.storage.storage import UpdateState as PyroUpdateState  # noqa: E402

from tgpersist.adapters._write_behind import Batch, WriteBehind, WritesBehind  # noqa: E402
from tgpersist.domain import ChannelState, Peer, PeerKind, PeerType, Session, UpdateState  # noqa: E402
from tgpersist.domain.peer import from_dialog_id, to_dialog_id  # noqa: E402
from tgpersist.errors import InvalidArgument  # noqa: E402
from tgpersist.importers.pyrogram import TYPES  # noqa: E402
from tgpersist.repositories.lease import OnLost, SessionLease  # noqa: E402
from tgpersist.store import Account, Store  # noqa: E402
from tgpersist.validation import check_username  # noqa: E402

log = logging.getLogger(__name__)

#: Kurigram's peer type names and ours (the same table the importer and exporter use).
PEER_TYPES = TYPES
KURIGRAM_TYPES = {ours: theirs for theirs, ours in PEER_TYPES.items()}

#: What a new `SQLiteStorage` holds before the client sets anything (its `create()`).
FRESH: dict[str, Any] = {"dc_id": 2, "server_address": "149.154.167.51", "port": 443, "date": 0}

#: The session fields behind Kurigram's getter/setter methods.
FIELDS = ("dc_id", "server_address", "port", "api_id", "test_mode", "auth_key", "date", "user_id", "is_bot")

_UNSET: Any = object  # Kurigram's own "no value passed" sentinel: the class `object`


class PyrogramStorage(WritesBehind, Storage):
    """A Pyrogram/Kurigram storage engine for session `name` of `store`.

    `lease=False` skips the session lease; `owner`, `ttl`, `wait`, `timeout` and `on_lost` go to
    `acct.session.acquire` (`SessionBusy` if another owner holds the session). Once the lease is lost,
    writes stop and the setters, `flush()` and `close()` raise `LeaseLost`.
    """

    USERNAME_TTL = 8 * 60 * 60

    _row: Session  # the session as stored (or as it will be stored by the next setter)
    _values: dict[str, Any]  # what the getters return (test_mode may be None, as in Kurigram)

    def __init__(
        self,
        store: Store,
        name: str,
        *,
        lease: bool = True,
        owner: str | None = None,
        ttl: float = 30.0,
        wait: bool = False,
        timeout: float | None = None,
        on_lost: OnLost | None = None,
    ) -> None:
        self.name = name
        self._account: Account = store.account(name)
        self._lease_options: dict[str, Any] = {
            "owner": owner,
            "ttl": ttl,
            "wait": wait,
            "timeout": timeout,
            "on_lost": on_lost,
        }
        self._use_lease = lease
        self._lease: SessionLease | None = None
        self._writer = WriteBehind(f"Pyrogram storage {name!r}", self._check_lease)
        self._reset(None)

    def __repr__(self) -> str:
        return f"PyrogramStorage({self.name!r})"

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Take the lease and load the session, peers and update states into memory."""
        await self._writer.flush()  # opened again without a close: store what is queued first
        account = self._account
        if self._use_lease and self._lease is None:
            self._lease = await account.session.acquire(**self._lease_options)
        try:
            session = await account.session.load()
            peers = await account.peers.list()
            state = await account.updates.load_state()
            channels = await account.updates.list_channels()
        except BaseException:
            await self._release()
            raise
        self._reset(session)
        for peer in peers:
            seen = peer.updated_at.timestamp() if peer.updated_at is not None else time.time()
            self._remember(peer, seen)
        if state is not None:
            self._states[0] = PyroUpdateState(0, state.pts, state.qts, state.date, state.seq)
        for channel in channels:
            marked = to_dialog_id(channel.channel_id, PeerKind.CHANNEL)
            self._states[marked] = PyroUpdateState(marked, channel.pts, None, None, None)

    async def save(self) -> None:
        """Record the time (as Kurigram does) and store everything queued."""
        await self.date(int(time.time()))

    async def close(self) -> None:
        """Store everything queued, then release the lease."""
        await self._writer.flush()
        await self._release()

    async def delete(self) -> None:
        """Delete the session and everything stored for it (Kurigram calls this on `log_out()`)."""
        self._reset(None)
        self._writer.submit(Batch("delete", self._delete_session, {"delete": None}, barrier=True))
        await self._writer.flush()

    # -- peers ---------------------------------------------------------------------------------------------
    async def update_peers(self, peers: Iterable[tuple[int, int, str, str | None]]) -> None:
        """Insert or replace peers by marked id; a replaced peer keeps its usernames (as in Kurigram)."""
        now = time.time()
        changed: dict[int, Peer] = {}
        for peer_id, access_hash, peer_type, phone_number in peers:
            peer = self._peer_of(peer_id, access_hash, peer_type, phone_number)
            changed.pop(peer_id, None)
            changed[peer_id] = peer
        for peer in changed.values():
            self._remember(peer, now)
        if changed:
            self._writer.submit(Batch("peers", self._save_peers, changed))

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
            kept: list[str] = []
            for name in names:
                if name is None or name.lower() in {k.lower() for k in kept}:
                    continue
                try:
                    kept.append(check_username("username", name))
                except InvalidArgument as error:
                    log.warning("not storing a username of peer %s: %s", peer_id, error.problem)
            updated = replace(peer, username=kept[0] if kept else None, usernames=tuple(kept))
            self._remember(updated, self._seen[peer_id])
            changed.pop(peer_id, None)
            changed[peer_id] = self._peers[peer_id]
        if changed:
            self._writer.submit(Batch("peers", self._save_peers, changed))

    async def get_peer_by_id(self, peer_id: int) -> Any:
        peer = self._peers.get(peer_id)
        if peer is None:
            raise KeyError(f"ID not found: {peer_id}")
        return self._input_peer(peer)

    async def get_peer_by_username(self, username: str) -> Any:
        owner = self._by_username.get(username.lower()) if isinstance(username, str) else None
        if owner is None or username not in self._peers[owner].usernames:  # matched exactly, as Kurigram
            raise KeyError(f"Username not found: {username}")
        if abs(time.time() - self._seen[owner]) > self.USERNAME_TTL:
            raise KeyError(f"Username expired: {username}")
        return self._input_peer(self._peers[owner])

    async def get_peer_by_phone_number(self, phone_number: str) -> Any:
        found = self._by_phone.get(phone_number)
        if not found:
            raise KeyError(f"Phone number not found: {phone_number}")
        return self._input_peer(self._peers[min(found)])  # the one SQLiteStorage's index finds first

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
        channel_ids = {marked: self._channel_id(marked) for marked in ids if marked != 0}
        for marked in ids:
            self._states.pop(marked, None)
        if 0 in ids:
            self._writer.submit(Batch("deleted update state", self._delete_state, {0: None}, barrier=True))
        if channel_ids:
            gone = {channel_id: channel_id for channel_id in channel_ids.values()}
            self._writer.submit(Batch("deleted channel states", self._delete_channels, gone))

    # -- session fields --------------------------------------------------------------------------------------
    async def dc_id(self, value: int | type[object] | None = _UNSET) -> Any:
        return await self._accessor("dc_id", value)

    async def server_address(self, value: str | type[object] | None = _UNSET) -> Any:
        return await self._accessor("server_address", value)

    async def port(self, value: int | type[object] | None = _UNSET) -> Any:
        return await self._accessor("port", value)

    async def api_id(self, value: int | type[object] | None = _UNSET) -> Any:
        return await self._accessor("api_id", value)

    async def test_mode(self, value: bool | type[object] | None = _UNSET) -> Any:
        return await self._accessor("test_mode", value)

    async def auth_key(self, value: bytes | type[object] | None = _UNSET) -> Any:
        return await self._accessor("auth_key", value)

    async def date(self, value: int | type[object] | None = _UNSET) -> Any:
        return await self._accessor("date", value)

    async def user_id(self, value: int | type[object] | None = _UNSET) -> Any:
        return await self._accessor("user_id", value)

    async def is_bot(self, value: bool | type[object] | None = _UNSET) -> Any:
        return await self._accessor("is_bot", value)

    async def _accessor(self, field: str, value: Any) -> Any:
        if value is _UNSET:
            return self._values[field]
        change: dict[str, Any] = {field: False if field == "test_mode" and value is None else value}
        row = replace(self._row, **change)
        self._values[field] = value
        if row != self._row:
            self._row = row
            self._writer.submit(Batch("session", self._save_session, {"session": row}))
        await self._writer.flush()
        return None

    # -- memory ----------------------------------------------------------------------------------------------
    def _reset(self, session: Session | None) -> None:
        """Memory as after loading `session` (None: nothing stored yet)."""
        row = session or Session(self.name)
        values: dict[str, Any] = {name: getattr(row, name) for name in FIELDS}
        if row.dc_id is None:  # never written by a client: what a new SQLiteStorage holds
            values.update(FRESH, test_mode=None)
            row = replace(row, **FRESH)
        self._row = row
        self._values = values
        self._peers: dict[int, Peer] = {}
        self._seen: dict[int, float] = {}  # marked id -> when update_peers last stored it (epoch seconds)
        self._by_username: dict[str, int] = {}  # lower-case username -> marked id of its one owner
        self._by_phone: dict[str, set[int]] = {}
        self._states: dict[int, PyroUpdateState] = {}

    def _peer_of(self, peer_id: int, access_hash: int, peer_type: str, phone_number: str | None) -> Peer:
        ours = PEER_TYPES.get(peer_type)
        if ours is None:
            raise InvalidArgument("type", f"Invalid peer type: {peer_type}")
        bare, kind = from_dialog_id(peer_id)
        if kind is not ours.kind:
            raise InvalidArgument("id", f"{peer_id} is not the id of a {peer_type}")
        existing = self._peers.get(peer_id)
        base = existing if existing is not None and existing.type.kind is kind else Peer(bare, ours)
        values: dict[str, Any] = {
            "type": ours,
            "access_hash": access_hash,
            "phone_number": phone_number,
            "is_bot": True if ours is PeerType.BOT else None,
        }
        try:
            return replace(base, **values)
        except InvalidArgument as error:
            if error.field != "phone_number":
                raise
            log.warning("not storing the phone number of peer %s: %s", peer_id, error.problem)
            return replace(base, **{**values, "phone_number": None})

    def _remember(self, peer: Peer, seen: float) -> None:
        marked = peer.dialog_id
        old = self._peers.get(marked)
        if old is not None:
            for name in old.usernames:
                if self._by_username.get(name.lower()) == marked:
                    del self._by_username[name.lower()]
            if old.phone_number and marked in self._by_phone.get(old.phone_number, ()):
                self._by_phone[old.phone_number].discard(marked)
                if not self._by_phone[old.phone_number]:
                    del self._by_phone[old.phone_number]
        for name in peer.usernames:
            owner = self._by_username.get(name.lower())
            if owner is not None and owner != marked:
                self._take_username(owner, name.lower())
            self._by_username[name.lower()] = marked
        if peer.phone_number:
            self._by_phone.setdefault(peer.phone_number, set()).add(marked)
        self._peers[marked] = peer
        self._seen[marked] = seen

    def _take_username(self, owner: int, key: str) -> None:
        """`key` moved to another peer: drop it from `owner` (the database does the same on save)."""
        peer = self._peers[owner]
        primary = peer.username if peer.username and peer.username.lower() != key else None
        kept = tuple(name for name in peer.usernames if name.lower() != key)
        self._peers[owner] = replace(peer, username=primary, usernames=kept)

    @staticmethod
    def _input_peer(peer: Peer) -> Any:
        access_hash: Any = peer.access_hash  # None only if the client stored None, as Kurigram would
        return get_input_peer(peer.dialog_id, access_hash, KURIGRAM_TYPES[peer.type])

    @staticmethod
    def _channel_id(marked: int) -> int:
        bare, kind = from_dialog_id(marked)
        if kind is not PeerKind.CHANNEL:
            raise InvalidArgument("id", f"update state {marked} is neither 0 nor a channel's marked id")
        return bare

    # -- the writes, run by the write-behind task ------------------------------------------------------------
    async def _release(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.release()

    async def _delete_channels(self, channel_ids: list[int]) -> None:
        for channel_id in channel_ids:
            await self._account.updates.delete_channel(channel_id)

    async def _delete_state(self, _: list[None]) -> None:
        await self._account.updates.delete_state()

    async def _delete_session(self, _: list[None]) -> None:
        await self._account.session.delete()
