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
from telethon.tl import types  # noqa: E402

from tgpersist.adapters._telethon_index import EntityIndex  # noqa: E402
from tgpersist.adapters._telethon_values import (  # noqa: E402
    EPOCH,
    Row,
    account_state,
    channel_state,
    display_name,
    entities_in,
    entity_row,
    epoch_seconds,
    peer_values,
    valid_peer,
)
from tgpersist.adapters._write_behind import Batch, WriteBehind, WritesBehind, lease_callback  # noqa: E402
from tgpersist.domain import ChannelState, Peer, Session, UpdateState  # noqa: E402
from tgpersist.errors import InvalidArgument  # noqa: E402
from tgpersist.repositories.files import SentFile  # noqa: E402
from tgpersist.repositories.lease import OnLost, SessionLease  # noqa: E402
from tgpersist.store import Account, Store  # noqa: E402

log = logging.getLogger(__name__)

#: `EPOCH`, `Row`, `display_name` and `entity_row` live in `_telethon_values`; importable from here too.
__all__ = ["EPOCH", "Row", "TelethonSession", "display_name", "entity_row"]


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
            stored = UpdateState(state.pts, state.qts, epoch_seconds(state.date), state.seq)
            self._update_states[0] = account_state(stored)
            self._writer.submit(Batch("update state", self._save_state, {0: stored}))
        else:
            channel = ChannelState(entity_id, state.pts)
            self._update_states[entity_id] = channel_state(channel.pts)
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
        for entity in entities_in(tlo):
            row = self._entity_to_row(entity)
            if not row:
                continue
            if row[0] == 0:  # Telethon's way of recording our own user id: entity 0, hash = id
                self._set_self_id(row[1])
                continue
            existing = self._entities.peer(row[0])
            values = peer_values(entity, row, existing)
            if existing is not None and all(getattr(existing, k) == v for k, v in values.items()):
                continue  # seen before, unchanged (the common case): no Peer to build, nothing to write
            peer = valid_peer(values)
            if peer is None or peer == existing:
                continue
            self._entities.remember(peer)
            changed[row[0]] = peer
        if changed:
            self._writer.submit(Batch("peers", self._save_peers, changed))

    def get_entity_rows_by_phone(self, phone: str) -> tuple[int, int] | None:
        return self._first(self._entities.with_phone(phone))

    def get_entity_rows_by_username(self, username: str) -> tuple[int, int] | None:
        marked = self._entities.with_username(username)
        return None if marked is None else self._pair(marked)

    def get_entity_rows_by_name(self, name: str) -> tuple[int, int] | None:
        return self._first(self._entities.with_name(name))

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
        self._entities = EntityIndex()

    def _load(self, loaded: _Loaded) -> None:
        row = loaded.session or self._row
        self._row = row
        self._dc_id = row.dc_id or 0
        self._server_address = row.server_address
        self._port = row.port
        self._auth_key = AuthKey(row.auth_key) if row.auth_key else None
        self._takeout_id = row.takeout_id
        for peer in loaded.peers:
            self._entities.remember(peer)
        if loaded.state is not None:
            self._update_states[0] = account_state(loaded.state)
        for channel in loaded.channels:
            self._update_states[channel.channel_id] = channel_state(channel.pts)
        for file in loaded.files:
            if file.type in (t.value for t in _SentFileType):
                key = (file.md5_digest, file.file_size, _SentFileType(file.type))
                self._files[key] = (file.id, file.access_hash)

    def _has(self, marked: int) -> bool:
        return self._row.user_id is not None if marked == 0 else self._entities.has(marked)

    def _pair(self, marked: int) -> tuple[int, int]:
        if marked == 0:
            assert self._row.user_id is not None
            return 0, self._row.user_id
        return marked, self._entities.access_hash(marked)

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
