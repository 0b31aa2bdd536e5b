"""What the Pyrogram-family storage adapters (Kurigram, Pyrofork, Hydrogram) share: lifecycle and lease,
the in-memory account, the session getters/setters, peer lookups, and the writes behind them.

Each fork's module adds its own `Storage` base class and the methods whose contract differs (the tuples
`update_peers` receives, usernames, update state); this module imports no client library.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, ClassVar

from tgpersist.adapters._write_behind import Batch, WriteBehind, WritesBehind, lease_callback
from tgpersist.domain import ChannelState, Peer, PeerKind, PeerType, Session, UpdateState
from tgpersist.domain.peer import from_dialog_id
from tgpersist.errors import InvalidArgument
from tgpersist.importers.pyrogram import TYPES
from tgpersist.repositories.lease import OnLost, SessionLease
from tgpersist.store import Account, Store
from tgpersist.validation import check_username

log = logging.getLogger(__name__)

#: The forks' peer type names and ours (the same table the importer and exporter use).
PEER_TYPES = TYPES
FORK_TYPES = {ours: theirs for theirs, ours in PEER_TYPES.items()}

#: What a new `SQLiteStorage` holds before the client sets anything (its `create()`).
FRESH: dict[str, Any] = {"dc_id": 2, "server_address": "149.154.167.51", "port": 443, "date": 0}

_UNSET: Any = object  # the forks' own "no value passed" sentinel: the class `object`


def _as_sqlite(value: Any) -> Any:
    """A value as the forks' SQLite session table gives it back (booleans are integers there)."""
    return int(value) if isinstance(value, bool) else value


class FamilyStorage(WritesBehind):
    """A Pyrogram-family storage engine for session `name` of `store` (see the fork modules).

    `lease=False` skips the session lease; `owner`, `ttl`, `wait`, `timeout` and `on_lost` go to
    `acct.session.acquire` (`SessionBusy` if another owner holds the session). Once the lease is lost,
    writes stop and the setters, `flush()` and `close()` raise `LeaseLost`.
    """

    USERNAME_TTL = 8 * 60 * 60
    #: The session fields behind the fork's getter/setter methods.
    FIELDS: ClassVar[tuple[str, ...]] = (
        "dc_id",
        "api_id",
        "test_mode",
        "auth_key",
        "date",
        "user_id",
        "is_bot",
    )

    _row: Session  # the session as stored (or as it will be stored by the next setter)
    _values: dict[str, Any]  # what the getters return (test_mode may be None, as in the forks)

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
            # The caller's own, else the default: log at ERROR, disconnect the client, drop the key.
            "on_lost": lease_callback(on_lost, lambda: self),
        }
        self._use_lease = lease
        self._lease: SessionLease | None = None
        self._writer = WriteBehind(f"{type(self).__name__} {name!r}", self._check_lease)
        self._reset(None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

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
        self._load_states(state, channels)

    def _load_states(self, state: UpdateState | None, channels: list[ChannelState]) -> None:
        """Put the stored update states into memory (forks without update state keep none)."""

    async def save(self) -> None:
        """Record the time (as the forks do) and store everything queued."""
        await self.date(int(time.time()))

    async def close(self) -> None:
        """Store everything queued, then release the lease."""
        await self._writer.flush()
        await self._release()

    async def delete(self) -> None:
        """Delete the session and everything stored for it (the client calls this on `log_out()`)."""
        self._reset(None)
        self._writer.submit(Batch("delete", self._delete_session, {"delete": None}, barrier=True))
        await self._writer.flush()

    # -- a lost lease: stop the client from using the auth key -----------------------------------------
    def clients(self) -> list[Any]:
        """The clients (Kurigram, Pyrofork or Hydrogram `Client`s) whose storage is this adapter and
        that are still alive; looked for only when the lease is lost."""
        found: list[Any] = []
        for referrer in gc.get_referrers(self):
            # A client refers to its storage through its instance __dict__.
            holders = gc.get_referrers(referrer) if isinstance(referrer, dict) else [referrer]
            for holder in holders:
                serves = getattr(holder, "storage", None) is self and hasattr(holder, "disconnect")
                if serves and holder not in found:
                    found.append(holder)
        return found

    async def _disconnect_client(self) -> None:
        for client in self.clients():
            if getattr(client, "is_connected", False):
                await client.disconnect()

    def _forget_auth_key(self) -> None:
        self._values["auth_key"] = None  # the new owner's now: a client reconnecting finds none

    # -- peers ---------------------------------------------------------------------------------------------
    def _store_peers(self, changed: dict[int, Peer], seen: float) -> None:
        for peer in changed.values():
            self._remember(peer, seen)
        if changed:
            self._writer.submit(Batch("peers", self._save_peers, changed))

    async def get_peer_by_id(self, peer_id: int) -> Any:
        peer = self._peers.get(peer_id)
        if peer is None:
            raise KeyError(f"ID not found: {peer_id}")
        return self._input_peer(peer)

    async def get_peer_by_phone_number(self, phone_number: str) -> Any:
        found = self._by_phone.get(phone_number)
        if not found:
            raise KeyError(f"Phone number not found: {phone_number}")
        return self._input_peer(self._peers[min(found)])  # the one SQLiteStorage's index finds first

    def _expired(self, seen: float) -> bool:
        return abs(time.time() - seen) > self.USERNAME_TTL

    # -- session fields --------------------------------------------------------------------------------------
    async def dc_id(self, value: int | type[object] | None = _UNSET) -> Any:
        return await self._accessor("dc_id", value)

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
        self._values[field] = _as_sqlite(value)
        if row != self._row:
            self._row = row
            self._writer.submit(Batch("session", self._save_session, {"session": row}))
        await self._writer.flush()
        return None

    # -- memory ----------------------------------------------------------------------------------------------
    def _reset(self, session: Session | None) -> None:
        """Memory as after loading `session` (None: nothing stored yet)."""
        row = session or Session(self.name)
        values: dict[str, Any] = {name: _as_sqlite(getattr(row, name)) for name in self.FIELDS}
        if row.dc_id is None:  # never written by a client: what a new SQLiteStorage holds
            fresh = {k: v for k, v in FRESH.items() if k in self.FIELDS}
            values.update(fresh, test_mode=None)
            row = replace(row, **fresh)
        self._row = row
        self._values = values
        self._peers: dict[int, Peer] = {}
        self._seen: dict[int, float] = {}  # marked id -> when update_peers last stored it (epoch seconds)
        self._by_username: dict[str, int] = {}  # lower-case username -> marked id of its one owner
        self._by_phone: dict[str, set[int]] = {}

    def _peer_of(
        self, peer_id: int, access_hash: int, peer_type: str, phone_number: str | None, **more: Any
    ) -> Peer:
        """The peer an `update_peers` tuple describes, built on the stored one (`more`: other fields)."""
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
            **more,
        }
        try:
            return replace(base, **values)
        except InvalidArgument as error:
            if error.field != "phone_number":
                raise
            log.warning("not storing the phone number of peer %s: %s", peer_id, error.problem)
            return replace(base, **{**values, "phone_number": None})

    @staticmethod
    def _valid_usernames(peer_id: int, names: Iterable[str | None]) -> list[str]:
        """`names` without None, repeats (ignoring case) and names tgpersist rejects (logged)."""
        kept: list[str] = []
        for name in names:
            if name is None or name.lower() in {k.lower() for k in kept}:
                continue
            try:
                kept.append(check_username("username", name))
            except InvalidArgument as error:
                log.warning("not storing a username of peer %s: %s", peer_id, error.problem)
        return kept

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

    def _input_peer(self, peer: Peer) -> Any:
        access_hash: Any = peer.access_hash  # None only if the client stored None, as the forks would
        return self._fork_input_peer(peer.dialog_id, access_hash, FORK_TYPES[peer.type])

    def _fork_input_peer(self, peer_id: int, access_hash: Any, peer_type: str) -> Any:
        """The fork's own `get_input_peer(marked id, access hash, type name)` (its errors included)."""
        raise NotImplementedError

    def _forget_states(self, ids: Iterable[int]) -> None:
        """Queue the deletion of update states `ids` (0: the account's), each id checked first."""
        ids = tuple(ids)
        channel_ids = {self._channel_id(marked) for marked in ids if marked != 0}
        if 0 in ids:
            self._writer.submit(Batch("deleted update state", self._delete_state, {0: None}, barrier=True))
        if channel_ids:
            gone = {channel_id: channel_id for channel_id in sorted(channel_ids)}
            self._writer.submit(Batch("deleted channel states", self._delete_channels, gone))

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
