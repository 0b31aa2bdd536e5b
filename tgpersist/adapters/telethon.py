"""Telethon v1 on tgpersist: `TelethonSession`, a drop-in `telethon.sessions.abstract.Session`.

Telethon calls its session synchronously from inside the event loop, so this adapter never waits for
the database on those calls. `await TelethonSession.open(store, name)` loads the account (session row,
entities, update states, sent files) into memory; every read is answered from memory, and every change
is queued and written behind, in order, by one background task::

    session = await TelethonSession.open(store, "alice")   # also takes the session lease
    async with TelegramClient(session, api_id, api_hash) as client:
        ...
    await session.aclose()   # waits until every change is stored, then releases the lease

Telethon's `disconnect()` calls the synchronous `close()`, which can only *schedule* that final flush:
always `await session.aclose()` (or at least `await session.flush()`) before the program ends or the
store is closed. Changes made before a completed `flush()`/`aclose()` are durable.

What is stored where: DC id, address, port, auth key and takeout id in the session row (and our own
user id, which Telethon records as the entity with id 0); entities as peers (bare id and type, access
hash, primary username, phone, first/last name or title); the account-wide update state (entity 0) as
`UpdateState` and channel states as `ChannelState` (pts only: Telethon reads nothing else of them, so
they come back with qts 0, seq 0 and the Unix epoch as date); sent files in the sent-file cache.

A lost session lease (taken over, or run out by this process's own clock while the database was out of
reach) calls `on_lost(lease)` if given; by default it logs at ERROR and stops the client from using the
auth key: every `TelegramClient` built on this session is disconnected (found through the garbage
collector's referrers, as Telethon gives its session no reference to the client), and then the key is
wiped from memory, so no reconnect can use it (see `WritesBehind.stop_using_auth_key`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from tgpersist.adapters import require

require("telethon", "telethon")

from telethon import utils  # noqa: E402
from telethon.crypto import AuthKey  # noqa: E402
from telethon.sessions.memory import MemorySession, _SentFileType  # noqa: E402
from telethon.tl import TLObject, types  # noqa: E402

from tgpersist.adapters._write_behind import Batch, WriteBehind, WritesBehind, lease_callback  # noqa: E402
from tgpersist.domain import ChannelState, Peer, PeerKind, PeerType, Session, UpdateState  # noqa: E402
from tgpersist.domain.peer import from_dialog_id  # noqa: E402
from tgpersist.errors import InvalidArgument  # noqa: E402
from tgpersist.repositories.files import SentFile  # noqa: E402
from tgpersist.repositories.lease import OnLost, SessionLease  # noqa: E402
from tgpersist.store import Account, Store  # noqa: E402

log = logging.getLogger(__name__)

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


def _valid_peer(values: dict[str, Any]) -> Peer | None:
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


def _entities_in(tlo: Any) -> list[Any]:
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


def _account_state(state: UpdateState) -> Any:
    return types.updates.State(
        state.pts, state.qts, dt.datetime.fromtimestamp(state.date, tz=dt.UTC), state.seq, unread_count=0
    )


def _channel_state(pts: int) -> Any:
    return types.updates.State(pts, 0, EPOCH, 0, unread_count=0)


def _epoch_seconds(date: Any) -> int:
    if isinstance(date, dt.datetime):
        return int(date.timestamp())
    if isinstance(date, int) and not isinstance(date, bool):
        return date
    raise InvalidArgument("date", f"expected a datetime, got {type(date).__name__}")


@dataclass(frozen=True)
class _Loaded:
    session: Session | None
    peers: list[Peer]
    state: UpdateState | None
    channels: list[ChannelState]
    files: list[SentFile]


class TelethonSession(WritesBehind, MemorySession):  # type: ignore[misc]
    """A Telethon session stored in tgpersist; create it with `await TelethonSession.open(store, name)`.

    Reads come from memory; writes are queued and stored in order by a background task. `flush()`
    waits until everything changed so far is stored; `aclose()` flushes and releases the lease.
    """

    def __init__(
        self,
        account: Account,
        loaded: _Loaded,
        *,
        lease: SessionLease | None = None,
        save_entities: bool = True,
    ) -> None:
        super().__init__()
        self.save_entities = save_entities
        self._account = account
        self._lease = lease
        self._writer = WriteBehind(f"Telethon session {account.name!r}", self._check_lease)
        self._closing: asyncio.Task[None] | None = None
        self._close_lock = asyncio.Lock()
        self._reset()
        self._load(loaded)

    @classmethod
    async def open(
        cls,
        store: Store,
        name: str,
        *,
        lease: bool = True,
        owner: str | None = None,
        ttl: float = 30.0,
        wait: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 (passed on to the lease's acquire)
        on_lost: OnLost | None = None,
        save_entities: bool = True,
    ) -> TelethonSession:
        """Take the session lease (unless `lease=False`) and load the account `name` into memory.

        `owner`, `ttl`, `wait`, `timeout` and `on_lost` go to `acct.session.acquire`; `SessionBusy` if
        another owner holds the session (and `wait` is False or `timeout` passes). Once the lease is
        lost, writes stop and `flush()`/`aclose()` raise `LeaseLost`.
        """
        account = store.account(name)
        made: list[TelethonSession] = []
        callback = lease_callback(on_lost, lambda: made[0] if made else None)
        held = (
            await account.session.acquire(owner=owner, ttl=ttl, wait=wait, timeout=timeout, on_lost=callback)
            if lease
            else None
        )
        try:
            loaded = _Loaded(
                session=await account.session.load(),
                peers=await account.peers.list(),
                state=await account.updates.load_state(),
                channels=await account.updates.list_channels(),
                files=await account.files.list(),
            )
        except BaseException:
            if held is not None:
                await held.release()
            raise
        made.append(cls(account, loaded, lease=held, save_entities=save_entities))
        return made[0]

    # -- our own API ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._account.name

    async def aclose(self) -> None:
        """Store every change, then release the session lease. Safe to call more than once."""
        async with self._close_lock:  # a close() scheduled by Telethon may be doing this right now
            await self._writer.flush()
            lease, self._lease = self._lease, None
            if lease is not None:
                await lease.release()

    def __repr__(self) -> str:
        return f"TelethonSession({self.name!r}, pending_writes={self.pending_writes})"

    # -- Telethon's Session: lifecycle ------------------------------------------------------------------
    def clone(self, to_instance: Any = None) -> Any:
        """Telethon clones a session for CDN/exported DCs; those copies are not stored (as with SQLite)."""
        return to_instance or MemorySession()

    def save(self) -> None:
        """Make sure the writer is storing what is queued (Telethon calls this after important changes)."""
        self._writer.start()

    def close(self) -> None:
        """Schedule `aclose()` (Telethon calls this synchronously from `disconnect()`): await `aclose()`."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._closing is None or self._closing.done():
            self._closing = loop.create_task(self.aclose(), name=f"close {self!r}")
            self._closing.add_done_callback(_report_failure)

    def delete(self) -> bool:
        """Forget everything about this session (Telethon calls this on `log_out()`); stored behind."""
        self._reset()
        self._writer.submit(Batch("delete", self._delete_session, {"delete": None}, barrier=True))
        return True

    @classmethod
    async def list_sessions(cls, store: Store) -> list[str]:
        """The names of every session in `store` (Telethon's own version lists files; it never calls it)."""
        return await store.list_sessions()

    # -- Telethon's Session: DC and keys ------------------------------------------------------------------
    def set_dc(self, dc_id: int, server_address: str, port: int) -> None:
        row = replace(self._row, dc_id=dc_id or None, server_address=server_address, port=port)
        super().set_dc(dc_id, row.server_address, port)
        self._save_row(row)

    @MemorySession.auth_key.setter  # type: ignore[untyped-decorator]
    def auth_key(self, value: Any) -> None:
        key = value if isinstance(value, bytes) else (value.key if value else None)
        row = replace(self._row, auth_key=key or None)
        self._auth_key = value
        self._save_row(row)

    @MemorySession.takeout_id.setter  # type: ignore[untyped-decorator]
    def takeout_id(self, value: int | None) -> None:
        row = replace(self._row, takeout_id=value)
        self._takeout_id = value
        self._save_row(row)

    # -- Telethon's Session: update state ------------------------------------------------------------------
    def set_update_state(self, entity_id: int, state: Any) -> None:
        """Entity 0 is the account-wide state; any other id is a channel (bare id), of which pts is kept."""
        if isinstance(entity_id, bool) or not isinstance(entity_id, int) or entity_id < 0:
            raise InvalidArgument("entity_id", "expected 0 or a channel id")
        if entity_id == 0:
            stored = UpdateState(state.pts, state.qts, _epoch_seconds(state.date), state.seq)
            self._update_states[0] = _account_state(stored)
            self._writer.submit(Batch("update state", self._save_state, {0: stored}))
        else:
            channel = ChannelState(entity_id, state.pts)
            self._update_states[entity_id] = _channel_state(channel.pts)
            self._writer.submit(Batch("channel states", self._save_channels, {entity_id: channel}))

    def get_update_states(self) -> list[tuple[int, Any]]:
        """Every (entity id, state), account-wide (0) first, then channels by id (as `SQLiteSession`)."""
        return sorted(self._update_states.items(), key=lambda item: item[0])

    # -- Telethon's Session: entities ----------------------------------------------------------------------
    def process_entities(self, tlo: Any) -> None:
        """Remember the users and chats in `tlo` (with Telethon's own `_entity_to_row` rules)."""
        if not self.save_entities:
            return
        changed: dict[int, Peer] = {}
        for entity in _entities_in(tlo):
            row = self._entity_to_row(entity)
            if not row:
                continue
            if row[0] == 0:  # Telethon's way of recording our own user id: entity 0, hash = id
                self._set_self_id(row[1])
                continue
            existing = self._peers.get(row[0])
            values = self._peer_values(entity, row, existing)
            if existing is not None and all(getattr(existing, k) == v for k, v in values.items()):
                continue  # seen before, unchanged (the common case): no Peer to build, nothing to write
            peer = _valid_peer(values)
            if peer is None or peer == existing:
                continue
            self._remember(peer)
            changed[row[0]] = peer
        if changed:
            self._writer.submit(Batch("peers", self._save_peers, changed))

    def get_entity_rows_by_phone(self, phone: str) -> tuple[int, int] | None:
        return self._first(self._by_phone.get(phone))

    def get_entity_rows_by_username(self, username: str) -> tuple[int, int] | None:
        marked = self._by_username.get(username)
        return None if marked is None else self._pair(marked)

    def get_entity_rows_by_name(self, name: str) -> tuple[int, int] | None:
        return self._first(self._by_name.get(name))

    def get_entity_rows_by_id(self, id: int, exact: bool = True) -> tuple[int, int] | None:
        if exact:
            return self._pair(id) if self._has(id) else None
        candidates = (
            utils.get_peer_id(types.PeerUser(id)),
            utils.get_peer_id(types.PeerChat(id)),
            utils.get_peer_id(types.PeerChannel(id)),
        )
        return self._first(c for c in candidates if self._has(c))

    # -- Telethon's Session: sent files --------------------------------------------------------------------
    def cache_file(self, md5_digest: bytes, file_size: int, instance: Any) -> None:
        super().cache_file(md5_digest, file_size, instance)  # TypeError for anything else, as Telethon
        kind = _SentFileType.from_type(type(instance)).value
        try:
            file = SentFile(md5_digest, file_size, kind, instance.id, instance.access_hash)
        except InvalidArgument as error:
            log.warning("sent file kept in memory only: %s", error)
            return
        key = (file.md5_digest, file.file_size, file.type)
        self._writer.submit(Batch("sent files", self._save_files, {key: file}))

    # -- memory -------------------------------------------------------------------------------------------
    def _reset(self) -> None:
        self._row = Session(self._account.name)
        self._dc_id = 0
        self._server_address: str | None = None
        self._port: int | None = None
        self._auth_key = None
        self._takeout_id = None
        self._files: dict[tuple[bytes, int, Any], tuple[int, int]] = {}
        self._update_states: dict[int, Any] = {}
        self._peers: dict[int, Peer] = {}
        self._rows: dict[int, Row] = {}
        self._by_username: dict[str, int] = {}
        self._by_phone: dict[str, set[int]] = {}
        self._by_name: dict[str, set[int]] = {}

    def _load(self, loaded: _Loaded) -> None:
        row = loaded.session or self._row
        self._row = row
        self._dc_id = row.dc_id or 0
        self._server_address = row.server_address
        self._port = row.port
        self._auth_key = AuthKey(row.auth_key) if row.auth_key else None
        self._takeout_id = row.takeout_id
        for peer in loaded.peers:
            self._remember(peer)
        if loaded.state is not None:
            self._update_states[0] = _account_state(loaded.state)
        for channel in loaded.channels:
            self._update_states[channel.channel_id] = _channel_state(channel.pts)
        for file in loaded.files:
            if file.type in (t.value for t in _SentFileType):
                key = (file.md5_digest, file.file_size, _SentFileType(file.type))
                self._files[key] = (file.id, file.access_hash)

    @staticmethod
    def _peer_values(entity: Any, row: Row, existing: Peer | None) -> dict[str, Any]:
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

    def _remember(self, peer: Peer) -> None:
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

    def _has(self, marked: int) -> bool:
        return self._row.user_id is not None if marked == 0 else marked in self._rows

    def _pair(self, marked: int) -> tuple[int, int]:
        if marked == 0:
            assert self._row.user_id is not None
            return 0, self._row.user_id
        return marked, self._rows[marked][1]

    def _first(self, ids: Iterable[int] | None) -> tuple[int, int] | None:
        """The entity with the lowest marked id, which is the one `SQLiteSession` finds first."""
        found = list(ids or ())
        return self._pair(min(found)) if found else None

    def _set_self_id(self, user_id: int) -> None:
        try:
            row = replace(self._row, user_id=user_id)
        except InvalidArgument as error:
            log.warning("not storing our own user id: %s", error)
            return
        self._save_row(row)

    def _save_row(self, row: Session) -> None:
        if row == self._row:
            return
        self._row = row
        self._writer.submit(Batch("session", self._save_session, {"session": row}))

    # -- a lost lease ----------------------------------------------------------------------------------------
    def clients(self) -> list[Any]:
        """The Telethon clients built on this session that are still alive."""
        from telethon.client.telegrambaseclient import TelegramBaseClient

        found: list[Any] = []
        for referrer in gc.get_referrers(self):
            # A client refers to its session directly or through its instance __dict__.
            holders = gc.get_referrers(referrer) if isinstance(referrer, dict) else [referrer]
            for holder in holders:
                if isinstance(holder, TelegramBaseClient) and holder.session is self and holder not in found:
                    found.append(holder)
        return found

    async def _disconnect_client(self) -> None:
        for client in self.clients():
            await client.disconnect()

    def _forget_auth_key(self) -> None:
        key = self._auth_key
        if isinstance(key, AuthKey):
            key.key = None  # Telethon's sender holds this very object
        self._auth_key = None

    # -- the writes, run by the write-behind task --------------------------------------------------------
    async def _save_files(self, files: list[SentFile]) -> None:
        await self._account.files.save_many(files)

    async def _delete_session(self, _: list[None]) -> None:
        await self._account.session.delete()


def _report_failure(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("closing a Telethon session failed: %s: %s", type(error).__name__, error)
