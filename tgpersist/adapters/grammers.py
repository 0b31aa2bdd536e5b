"""grammers on tgpersist: `GrammersSession`, a drop-in `grammers.sessions.Session` (Python >= 3.12).

    session = await GrammersSession.open(store, "alice")   # takes the session lease
    client = Client(session, api_id, api_hash)
    ...
    await session.aclose()                                  # releases the lease

Every method answers as grammers' own `SqliteSession` does for the same history of calls: reads come
from memory (loaded by `open`), writes go to the database before the call returns (fenced by the lease).
`dc_option(1..5)` answers grammers' built-in addresses for a DC never set. Stored as: the home DC in the
session row (with the home DC's key and address mirrored there, so Telethon/Pyrogram exports work), each
`DcOption` as a `DcAuth` (one port: the IPv4 address's), peers as `Peer`s (bot users as `PeerType.BOT`,
broadcast channels as `CHANNEL`, megagroups and gigagroups as `SUPERGROUP`), the self user as the
session's `user_id`, `UpdatesState` as `UpdateState` plus one `ChannelState` per channel.

Deliberate differences, where `SqliteSession` 0.4.8 fails and this does what its code intends:
`UpdateState.Primary`, `.Secondary` and `.Channel` are stored (SqliteSession raises `AttributeError`,
its `UpdateState.Primary` being the Secondary class: told apart here by their fields); a channel reads
back with the kind it was cached with (SqliteSession's `subtype & Gigagroup` makes every channel a
gigagroup); `peer()` takes `InputPeer*`/`Peer*` TL objects and a channel without an access hash
(SqliteSession raises `TypeError`); `updates_state()` returns the channel states even before any
account-wide state is set. Others: invalid values raise `InvalidArgument` before anything changes;
after reopening, a channel cached without a kind reads back as a broadcast channel, a gigagroup as a
megagroup, and one self user is kept (the lowest id, the one SqliteSession finds).

Lost lease: with no `on_lost` of the caller's, it is logged at ERROR (session and owner, never the key)
and every auth key is dropped from memory, so `dc_option` offers none and writes raise `LeaseLost`. Unlike
Telethon's and Pyrogram's adapters it does not disconnect the client: a grammers `Client` is built
around the session, which is never told of it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from tgpersist.adapters import require

require("grammers", "grammers")

from grammers.sessions import (  # noqa: E402
    ChannelKind,
    ChannelState,
    DcOption,
    PeerId,
    PeerInfo,
    PeerKind,
    UpdatesState,
)
from grammers.sessions.dc_options import DEFAULT_DC, KNOWN_DC_OPTIONS  # noqa: E402
from grammers.sessions.session import Session as GrammersBase  # noqa: E402
from grammers.tl import types as tl  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

from tgpersist import domain  # noqa: E402
from tgpersist.adapters._grammers_values import dc_auth_of, dc_option_of  # noqa: E402
from tgpersist.domain import Peer, PeerType  # noqa: E402
from tgpersist.errors import InvalidArgument, LeaseLost  # noqa: E402
from tgpersist.repositories.lease import OnLost, SessionLease  # noqa: E402
from tgpersist.sql import engines  # noqa: E402
from tgpersist.store import Account, Store  # noqa: E402

_KIND_OF_TYPE = {PeerType.CHANNEL: ChannelKind.Broadcast, PeerType.SUPERGROUP: ChannelKind.Megagroup}
_TYPE_OF_KIND = {int(ChannelKind.Broadcast): PeerType.CHANNEL}


log = logging.getLogger(__name__)


class GrammersSession(GrammersBase):  # type: ignore[misc]
    """A grammers session stored in tgpersist; create it with `await GrammersSession.open(store, name)`."""

    def __new__(cls, *args: Any, **kwargs: Any) -> GrammersSession:
        return super().__new__(cls)  # type: ignore[no-any-return]

    def __init__(self, store: Store, account: Account, lease: SessionLease | None) -> None:
        self.name = account.name
        self._store = store
        self._account = account
        self._lease = lease
        self._row = domain.Session(account.name)
        self._dcs: dict[int, domain.DcAuth] = {}
        self._peers: dict[int, Peer] = {}  # dialog id -> peer
        self._channel_kinds: dict[int, Any] = {}  # dialog id -> ChannelKind or None, as cached
        self._self_ids: set[int] = set()
        self._state: domain.UpdateState | None = None
        self._channels: dict[int, int] = {}  # bare channel id -> pts

    def __repr__(self) -> str:
        return f"GrammersSession({self.name!r})"

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
    ) -> GrammersSession:
        """Take the session lease (unless `lease=False`) and load the account into memory.

        `owner`, `ttl`, `wait`, `timeout` and `on_lost` go to `acct.session.acquire` (`SessionBusy` if
        another owner holds the session). Once the lease is lost, every write raises `LeaseLost`.
        """
        account = store.account(name)
        serving: list[GrammersSession] = []  # the lease is taken before the session exists
        default_on_lost: OnLost = lambda lost: serving[0]._drop_auth_keys(lost) if serving else None  # noqa: E731
        held = (
            await account.session.acquire(
                owner=owner, ttl=ttl, wait=wait, timeout=timeout, on_lost=on_lost or default_on_lost
            )
            if lease
            else None
        )
        session = cls(store, account, held)
        serving.append(session)
        try:
            await session._load()
        except BaseException:
            await session.aclose()
            raise
        return session

    async def _load(self) -> None:
        account = self._account
        row = await account.session.load()
        if row is not None:
            self._row = row
        self._dcs = {dc.dc_id: dc for dc in await account.dc_auth.list() if not dc.media_only}
        for peer in await account.peers.list():
            self._peers[peer.dialog_id] = peer
            if peer.type.kind is domain.PeerKind.CHANNEL:
                self._channel_kinds[peer.dialog_id] = _KIND_OF_TYPE.get(peer.type, ChannelKind.Megagroup)
        if self._row.user_id is not None:
            self._self_ids.add(self._row.user_id)
        self._state = await account.updates.load_state()
        self._channels = {c.channel_id: c.pts for c in await account.updates.list_channels()}

    def _drop_auth_keys(self, lease: SessionLease) -> None:
        """The default `on_lost`: log at ERROR and forget every auth key, so `dc_option` offers none
        (writes already refuse with `LeaseLost`). The grammers client is not disconnected: the session
        object never learns which client uses it."""
        log.error(
            "lease on session %r lost: dropping its auth keys from memory",
            lease.name,
            extra={"session": lease.name, "owner": lease.owner, "token": lease.token},
        )
        self._dcs.clear()
        self._row = replace(self._row, auth_key=None)

    @property
    def lease(self) -> SessionLease | None:
        """The lease held while open (None with `lease=False`, or once closed)."""
        return self._lease

    async def aclose(self) -> None:
        """Release the lease (every write is already stored)."""
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.release()

    async def close(self) -> None:
        """grammers' `close()`: the same as `aclose()`."""
        await self.aclose()

    # -- DCs ---------------------------------------------------------------------------------------------
    async def home_dc_id(self) -> int:
        return self._row.dc_id if self._row.dc_id is not None else DEFAULT_DC

    async def set_home_dc_id(self, dc_id: int) -> None:
        await self._save_row(replace(self._home_mirror(dc_id), dc_id=dc_id))

    async def dc_option(self, dc_id: int) -> DcOption | None:
        stored = self._dcs.get(dc_id)
        return dc_option_of(stored) if stored is not None else KNOWN_DC_OPTIONS.get(dc_id)

    async def set_dc_option(self, dc_option: DcOption) -> None:
        if not isinstance(dc_option, DcOption):
            raise InvalidArgument("dc_option", f"expected a DcOption, got {type(dc_option).__name__}")
        entry = dc_auth_of(dc_option)
        await self._account.dc_auth.save(entry, token=self._token())
        self._dcs[entry.dc_id] = entry
        if entry.dc_id == await self.home_dc_id():
            await self._save_row(self._home_mirror(entry.dc_id))

    def _home_mirror(self, dc_id: int) -> domain.Session:
        """The session row with DC `dc_id`'s key and address copied in (for the other clients' exports)."""
        entry = self._dcs.get(dc_id)
        if entry is None:
            return replace(self._row, auth_key=None, server_address=None, port=None)
        return replace(
            self._row, auth_key=entry.auth_key, server_address=entry.ipv4 or entry.ipv6, port=entry.port
        )

    # -- peers -------------------------------------------------------------------------------------------
    async def peer(self, peer: Any) -> PeerInfo | None:
        peer_id = _peer_id(peer)
        if peer_id is None:
            return None
        if peer_id.kind == PeerKind.UserSelf:
            if not self._self_ids:
                return None
            dialog_id = min(self._self_ids)
        else:
            dialog_id = peer_id.bot_api_dialog_id
        stored = self._peers.get(dialog_id)
        return None if stored is None else self._info(stored)

    def _info(self, peer: Peer) -> PeerInfo:
        if peer.type.kind is domain.PeerKind.USER:
            return PeerInfo.User(
                id=peer.id,
                auth=peer.access_hash,
                bot=peer.type is PeerType.BOT,
                is_self=peer.id in self._self_ids,
            )
        if peer.type.kind is domain.PeerKind.CHAT:
            return PeerInfo.Chat(id=peer.id)
        return PeerInfo.Channel(
            id=peer.id, auth=peer.access_hash, kind=self._channel_kinds.get(peer.dialog_id)
        )

    async def cache_peer(self, peer_info: Any) -> None:
        stored, kind, is_self = _peer_of(peer_info, self._peers)
        self._token()  # the peer cache is not fenced: only refuse once the lease is known lost
        await self._account.peers.save(stored)
        self._peers[stored.dialog_id] = stored
        if stored.type.kind is domain.PeerKind.CHANNEL:
            self._channel_kinds[stored.dialog_id] = kind
        if stored.type.kind is domain.PeerKind.USER:
            ids = self._self_ids | {stored.id} if is_self else self._self_ids - {stored.id}
            if ids != self._self_ids:
                user_id = min(ids) if ids else None
                is_bot = self._peers[user_id].type is PeerType.BOT if user_id is not None else None
                await self._save_row(replace(self._row, user_id=user_id, is_bot=is_bot))
                self._self_ids = ids

    # -- update state ------------------------------------------------------------------------------------
    async def updates_state(self) -> UpdatesState:
        state = self._state or domain.UpdateState(0, 0, 0, 0)
        channels = [ChannelState(i, pts) for i, pts in self._channels.items()]
        return UpdatesState(state.pts, state.qts, state.date, state.seq, channels)

    async def set_update_state(self, update: Any) -> None:
        updates = self._account.updates
        current = self._state or domain.UpdateState(0, 0, 0, 0)
        name = type(update).__name__
        if isinstance(update, UpdatesState):
            state = domain.UpdateState(update.pts, update.qts, update.date, update.seq)
            channels = {c.id: c.pts for c in update.channels}
            await self._replace_state(state, channels)
            self._state, self._channels = state, channels
        elif name == "Channel" and hasattr(update, "id"):
            channel = domain.ChannelState(update.id, update.pts)
            await updates.save_channel(channel, token=self._token())
            self._channels[channel.channel_id] = channel.pts
        elif name in ("Primary", "Secondary") and hasattr(update, "date"):  # the Primary fields
            state = replace(current, pts=update.pts, date=update.date, seq=update.seq)
            await updates.save_state(state, token=self._token())
            self._state = state
        elif name in ("Primary", "Secondary"):  # Secondary (0.4.8 shows its qts as `pts` in the repr)
            qts: int = update.qts if hasattr(update, "qts") else update.pts
            state = replace(current, qts=qts)
            await updates.save_state(state, token=self._token())
            self._state = state
        else:
            raise InvalidArgument("update", f"expected an UpdateState, got {name}")

    async def _replace_state(self, state: domain.UpdateState, channels: dict[int, int]) -> None:
        """The account's state and exactly `channels`, in one transaction (all of it or nothing)."""
        token = self._token()
        states = [domain.ChannelState(i, pts) for i, pts in channels.items()]
        writer = self._store.engine.execution_options(**{engines.WRITE: True})
        async with AsyncSession(bind=writer, expire_on_commit=False) as db, db.begin():
            updates = self._store.account(self.name, session=db).updates
            for gone in set(self._channels) - set(channels):
                await updates.delete_channel(gone)
            if states:
                await updates.save_channels(states, token=token)
            await updates.save_state(state, token=token)

    # -- writes ------------------------------------------------------------------------------------------
    def _token(self) -> int | None:
        lease = self._lease
        if lease is None:
            return None
        if lease.lost:
            raise LeaseLost(self.name, lease.token)
        return lease.token

    async def _save_row(self, row: domain.Session) -> None:
        if row != self._row:
            await self._account.session.save(row, token=self._token())
            self._row = row


def _peer_id(peer: Any) -> PeerId | None:
    """grammers' `PeerId` of an int, a `PeerId` or an `InputPeer*`/`Peer*` TL object (None: empty)."""
    if isinstance(peer, PeerId):
        return peer
    if isinstance(peer, int) and not isinstance(peer, bool):
        return PeerId(peer)
    if isinstance(peer, tl.InputPeerSelf):
        return PeerId.self_user()
    if isinstance(peer, tl.InputPeerEmpty):
        return None
    for cls, attribute, make in (
        ((tl.InputPeerUser, tl.InputPeerUserFromMessage, tl.PeerUser), "user_id", PeerId.user),
        ((tl.InputPeerChat, tl.PeerChat), "chat_id", PeerId.chat),
        ((tl.InputPeerChannel, tl.InputPeerChannelFromMessage, tl.PeerChannel), "channel_id", PeerId.channel),
    ):
        if isinstance(peer, cls):
            return make(getattr(peer, attribute))
    raise TypeError(f"argument 'id': expected int or PeerId, got '{type(peer).__name__}'")


def _peer_of(info: Any, known: dict[int, Peer]) -> tuple[Peer, Any, bool]:
    """The `Peer` a `PeerInfo` describes (built on the stored one), its channel kind and its self flag."""
    access_hash = int(info.access_hash) if getattr(info, "access_hash", None) is not None else None
    if isinstance(info, PeerInfo.User):
        kind, peer_type, is_self = None, PeerType.BOT if info.bot else PeerType.USER, bool(info.is_self)
    elif isinstance(info, PeerInfo.Chat):
        kind, peer_type, is_self, access_hash = None, PeerType.CHAT, False, None
    elif isinstance(info, PeerInfo.Channel):
        kind, is_self = info.kind, False
        peer_type = (
            _TYPE_OF_KIND.get(int(kind), PeerType.SUPERGROUP) if kind is not None else PeerType.CHANNEL
        )
    else:
        raise InvalidArgument("peer_info", f"expected a PeerInfo, got {type(info).__name__}")
    bare = info.id.bare_id
    base = known.get(info.id.bot_api_dialog_id) or Peer(bare, peer_type)
    is_bot = True if peer_type is PeerType.BOT else None
    return replace(base, type=peer_type, access_hash=access_hash, is_bot=is_bot), kind, is_self


__all__ = ["GrammersSession"]
