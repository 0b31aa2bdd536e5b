"""`PeerCache`: a bounded, least-recently-used cache of one account's peers, by id, username and phone.

The `PeerRepository` of a `Store` reads through it and writes through it, and keeps it equal to the
database for every write made through that store: saved peers replace their entries, a peer that
loses a username to another is dropped, deleted peers and deleted sessions are dropped, phone lookups
are forgotten when a saved peer may change their answer. A generation counter keeps a read that
raced with a write from caching what it read.

Writes from elsewhere (another process, another `Store` object, raw SQL) are not seen: `ttl` bounds
how long an entry is trusted (a short TTL gives eventual consistency), and `size=0` turns the cache
off. Inside a host's transaction (`store.account(name, session=...)`) the cache is bypassed for reads
and cleared on every write and again when the host's transaction ends.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import timedelta

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction

from tgpersist.domain import Peer
from tgpersist.errors import InvalidArgument
from tgpersist.metrics import peer_cache_lookups as lookups
from tgpersist.validation import check_seconds, phone_key

#: Peers kept per account by default: with typical fields about 0.6 KB each (the `Peer` objects about
#: 450 bytes, the cache's own structures about 150), so at most ~30 MB per account (see the README).
DEFAULT_SIZE = 50_000

#: Key of the set of caches to clear when a host session's transaction ends (in `Session.info`).
_HOST_PENDING = "tgpersist_peer_caches"


class PeerCache:
    """One account's cached peers: an LRU of `size` peers by Bot API id, plus username and phone indexes.

    Index entries exist only for cached peers, so evicting a peer removes its usernames and phone too.
    Every method is synchronous: between two awaits of the event loop the cache is never half-updated.
    """

    __slots__ = ("_clock", "_expiry", "_generation", "_names", "_peers", "_phones", "_writing", "size", "ttl")

    def __init__(self, size: int, ttl: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.size = size
        self.ttl = ttl
        self._clock = clock
        self._peers: OrderedDict[int, Peer] = OrderedDict()  # dialog id -> peer, least recent first
        self._expiry: dict[int, float] = {}  # dialog id -> clock time it expires (with a TTL only)
        self._names: dict[str, int] = {}  # lower-case username -> dialog id of a cached peer
        self._phones: dict[str, int] = {}  # phone digits -> dialog id of a cached peer
        self._generation = 0
        self._writing = 0

    def __len__(self) -> int:
        return len(self._peers)

    def __repr__(self) -> str:
        return f"PeerCache({len(self._peers)}/{self.size} peers, ttl={self.ttl})"

    # -- lookups -----------------------------------------------------------------------------------
    def get(self, dialog_id: int) -> Peer | None:
        peer = self._peers.get(dialog_id)
        if peer is None:
            return None
        if self.ttl is not None and self._expiry[dialog_id] <= self._clock():
            self._drop(dialog_id)
            return None
        self._peers.move_to_end(dialog_id)
        lookups.hits += 1
        return peer

    def get_by_username(self, key: str) -> Peer | None:
        dialog_id = self._names.get(key)
        return None if dialog_id is None else self.get(dialog_id)

    def get_by_phone(self, key: str) -> Peer | None:
        dialog_id = self._phones.get(key)
        return None if dialog_id is None else self.get(dialog_id)

    def peers(self) -> dict[int, Peer]:
        """A copy of the cached peers by Bot API id (least recently used first), recency untouched."""
        return dict(self._peers)

    def usernames(self) -> dict[str, int]:
        """A copy of the username index: lower-case username -> Bot API id."""
        return dict(self._names)

    def phones(self) -> dict[str, int]:
        """A copy of the phone index: phone digits -> Bot API id."""
        return dict(self._phones)

    def cached(self, dialog_ids: Iterable[int]) -> list[int]:
        """Those of `dialog_ids` that are cached (expired or not)."""
        peers = self._peers
        return [dialog_id for dialog_id in dialog_ids if dialog_id in peers]

    # -- read-through ------------------------------------------------------------------------------
    def token(self) -> int | None:
        """Take before a database read; pass to `fill`. None while a write is in flight."""
        return None if self._writing else self._generation

    def fill(self, token: int | None, dialog_id: int, peer: Peer, phone: str | None = None) -> None:
        """Cache what a read found, unless a write began or ended since `token` was taken."""
        if token is None or token != self._generation or self._writing:
            return
        self._put(dialog_id, peer)
        if phone is not None:
            self._phones[phone] = dialog_id

    # -- write-through -----------------------------------------------------------------------------
    def begin_write(
        self,
        dialog_ids: Iterable[int] = (),
        username_keys: Iterable[str] = (),
        phone_keys: Iterable[str] = (),
    ) -> int:
        """Before a write: drop what it may change (its peers, the current owners of its usernames,
        lookups of its phones). Returns the token for `end_write`."""
        self._writing += 1
        self._generation += 1
        peers = self._peers
        for dialog_id in dialog_ids:
            if dialog_id in peers:
                self._drop(dialog_id)
        names = self._names
        for key in username_keys:
            owner = names.get(key)
            if owner is not None:
                self._drop(owner)
        for key in phone_keys:
            self._phones.pop(key, None)
        return self._generation

    def end_write(self, token: int, stored: Iterable[tuple[int, Peer]] = ()) -> None:
        """After a write (committed or not): cache `stored` (the peers as the database now has them)
        only if no other write overlapped this one; otherwise leave them to the next read."""
        self._writing -= 1
        clean = token == self._generation and not self._writing
        self._generation += 1
        if clean:
            for dialog_id, peer in stored:
                self._put(dialog_id, peer)

    def invalidate(self) -> None:
        """Forget everything (and make reads in flight forget what they read)."""
        self._generation += 1
        self._peers.clear()
        self._expiry.clear()
        self._names.clear()
        self._phones.clear()

    # -- internals -----------------------------------------------------------------------------------
    def _put(self, dialog_id: int, peer: Peer) -> None:
        if self.size <= 0:
            return
        old = self._peers.pop(dialog_id, None)
        if old is not None:
            self._unindex(dialog_id, old)
        self._peers[dialog_id] = peer
        if self.ttl is not None:
            self._expiry[dialog_id] = self._clock() + self.ttl
        names = self._names
        for username in peer.usernames:
            key = username.lower()
            if key == username:
                key = username  # share the peer's own string: one copy less per cached username
            other = names.get(key)
            if other is not None and other != dialog_id:
                self._drop(other)  # the database moved this username: that entry is stale
            names[key] = dialog_id
        while len(self._peers) > self.size:
            evicted, gone = self._peers.popitem(last=False)
            self._expiry.pop(evicted, None)
            self._unindex(evicted, gone)

    def _drop(self, dialog_id: int) -> None:
        peer = self._peers.pop(dialog_id, None)
        if peer is not None:
            self._expiry.pop(dialog_id, None)
            self._unindex(dialog_id, peer)

    def _unindex(self, dialog_id: int, peer: Peer) -> None:
        names = self._names
        for username in peer.usernames:
            key = username.lower()
            if names.get(key) == dialog_id:
                del names[key]
        if peer.phone_number is not None:
            key = phone_key(peer.phone_number)
            if self._phones.get(key) == dialog_id:
                del self._phones[key]


class PeerCaches:
    """The peer caches of every account of one store, created on first use, all with one size and TTL."""

    def __init__(
        self,
        size: int = DEFAULT_SIZE,
        ttl: float | timedelta | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidArgument("peer_cache_size", "must be a whole number of peers, 0 or more (0: off)")
        self.size = size
        self.ttl = _seconds(ttl)
        self._clock = clock
        self._accounts: dict[str, PeerCache] = {}

    def account(self, name: str) -> PeerCache | None:
        """The cache of account `name`; None when caching is off."""
        if self.size == 0:
            return None
        cache = self._accounts.get(name)
        if cache is None:
            cache = self._accounts[name] = PeerCache(self.size, self.ttl, self._clock)
        return cache

    def __repr__(self) -> str:
        return f"PeerCaches(size={self.size}, ttl={self.ttl}, accounts={len(self._accounts)})"


def _seconds(ttl: float | timedelta | None) -> float | None:
    if ttl is None:
        return None
    return check_seconds("peer_cache_ttl", ttl)  # finite, positive, bounded; None means no expiry


def clear_when_host_ends(session: AsyncSession, cache: PeerCache) -> None:
    """Clear `cache` when the host's transaction ends (commit or rollback): until then other readers
    may still cache what the database held before the host's writes."""
    sync = session.sync_session
    pending: set[PeerCache] | None = sync.info.get(_HOST_PENDING)
    if pending is None:
        pending = sync.info[_HOST_PENDING] = set()
        event.listen(sync, "after_transaction_end", _host_transaction_ended)
    pending.add(cache)


def _host_transaction_ended(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return  # a SAVEPOINT or subtransaction: the host's outer transaction goes on
    pending: set[PeerCache] = session.info.get(_HOST_PENDING, set())
    for cache in pending:
        cache.invalidate()
    pending.clear()


@contextlib.asynccontextmanager
async def invalidating(
    caches: PeerCaches, name: str, host: AsyncSession | None = None
) -> AsyncIterator[None]:
    """Around a write that may change any of account `name`'s peers (deleting its session): the
    account's cache is emptied before and after it, and again when the `host` session's transaction
    ends (a write inside a host's transaction)."""
    cache = caches.account(name)
    if cache is None:
        yield
        return
    cache.invalidate()
    token = cache.begin_write()
    try:
        yield
    finally:
        cache.end_write(token)
        cache.invalidate()
        if host is not None:
            clear_when_host_ends(host, cache)
