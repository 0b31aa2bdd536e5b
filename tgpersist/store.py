"""`Store` (the database) and `Account` (every repository, scoped to one session name)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine.url import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from tgpersist import encryption, maintenance, metrics, migrate
from tgpersist.database import Database, JoinedDatabase
from tgpersist.domain.stats import QueueCounts, SessionSummary
from tgpersist.encryption import AuthKeyCipher, KeySource
from tgpersist.errors import InvalidArgument
from tgpersist.models import Placement, declare_models
from tgpersist.peer_cache import DEFAULT_SIZE as DEFAULT_PEER_CACHE_SIZE
from tgpersist.peer_cache import PeerCaches
from tgpersist.repositories import (
    ConversationRepository,
    DcAuthRepository,
    PeerRepository,
    QueuePolicy,
    Scope,
    SessionRepository,
    UpdateRepository,
    auth_keys,
    overview,
)
from tgpersist.repositories.files import SentFileRepository
from tgpersist.repositories.lease import LeaseInfo
from tgpersist.sql import engines, urls
from tgpersist.validation import check_int, check_seconds
from tgpersist.writes.group_commit import GroupCommit

DEFAULT_URL = "sqlite+aiosqlite:///tgpersist.db"
DEFAULT_CONNECT_TIMEOUT = engines.DEFAULT_CONNECT_TIMEOUT

log = logging.getLogger(__name__)


class Account:
    """The repositories of one session name: `session`, `peers`, `conversations`, `dc_auth`, `updates`,
    `files`."""

    def __init__(self, scope: Scope, policy: QueuePolicy) -> None:
        self.name = scope.name
        self.session = SessionRepository(scope)
        self.peers = PeerRepository(scope)
        self.conversations = ConversationRepository(scope)
        self.dc_auth = DcAuthRepository(scope)
        self.updates = UpdateRepository(scope, policy)
        self.files = SentFileRepository(scope)

    def __repr__(self) -> str:
        return f"Account({self.name!r})"


class Store:
    """tgpersist on one database.

    `Store(engine)` embeds into an application's own `AsyncEngine` (or `async_sessionmaker`), which the
    store never disposes; `open_store(url)` creates (and on close disposes) an engine of its own.
    """

    def __init__(
        self,
        bind: AsyncEngine | async_sessionmaker[AsyncSession],
        *,
        prefix: str = "tgpersist_",
        schema: str | None = None,
        queue_policy: QueuePolicy | None = None,
        retries: int = 8,
        encryption_key: KeySource | None = None,
        peer_cache_size: int = DEFAULT_PEER_CACHE_SIZE,
        peer_cache_ttl: float | timedelta | None = None,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        engine = bind.kw.get("bind") if isinstance(bind, async_sessionmaker) else bind
        if not isinstance(engine, AsyncEngine):
            raise InvalidArgument("bind", "expected an AsyncEngine or an async_sessionmaker bound to one")
        check_int("retries", retries, 0, 1000)
        self.placement = Placement(prefix=prefix, schema=schema)
        if schema is not None and engines.name_of(engine) != "postgresql":
            raise InvalidArgument("schema", "a schema placement needs PostgreSQL")
        engines.configure_engine(engine)
        self.engine = engine
        self.models = declare_models(self.placement)
        self.queue_policy = queue_policy or QueuePolicy()
        if connect_timeout is not None:
            connect_timeout = check_seconds("connect_timeout", connect_timeout)
        # `connect_timeout` bounds every connection checkout (pool wait, ping, connect) of ours.
        self._db = Database(engine, self.models, retries=retries, connect_timeout=connect_timeout)
        # Peers cached per account (0: off); `peer_cache_ttl` seconds bound staleness across processes.
        self._db.peer_caches = PeerCaches(peer_cache_size, peer_cache_ttl)
        #: Coalesces concurrent small writes of this store's accounts into shared transactions.
        self.writer = GroupCommit(self._db)
        #: Seals auth keys with `encryption_key` (default: $TGPERSIST_ENCRYPTION_KEY; none: plaintext).
        self.cipher = AuthKeyCipher(encryption.configured_key_ring(encryption_key))
        self._owns_engine = False
        self._accounts: dict[str, Account] = {}
        #: What the last `stats()` found (reported by the `tgpersist.queue.depth` metric).
        self.last_stats: dict[str, QueueCounts] = {}
        metrics.track(self)

    @property
    def dialect(self) -> str:
        return self._db.dialect

    def account(self, name: str, *, session: AsyncSession | None = None) -> Account:
        """The repositories scoped to session `name`.

        With `session=`, every call runs inside that `AsyncSession`'s transaction (each write in a
        SAVEPOINT) and commits nothing: the host commits or rolls back its rows and ours together.
        """
        if session is not None:
            if not isinstance(session, AsyncSession):
                raise InvalidArgument("session", f"expected an AsyncSession, got {type(session).__name__}")
            return Account(Scope(name, JoinedDatabase(session, self._db), self.cipher), self.queue_policy)
        account = self._accounts.get(name)
        if account is None:
            scope = Scope(name, self._db, self.cipher, self.writer)
            account = self._accounts[name] = Account(scope, self.queue_policy)
        return account

    async def list_sessions(self) -> list[str]:
        """Names of every stored session, sorted."""
        sessions = self.models.table(self.models.Session)

        async def work(conn: AsyncConnection) -> list[str]:
            return list((await conn.execute(select(sessions.c.name).order_by(sessions.c.name))).scalars())

        return await self._db.run(work, write=False)

    async def stats(self) -> dict[str, QueueCounts]:
        """Every account's durable queue by state (`QueueCounts`), by session name, in one query.

        The `tgpersist.queue.depth` metric reports what the last call found.
        """
        self.last_stats = await overview.queue_stats(self._db)
        return self.last_stats

    async def session_summaries(self) -> list[SessionSummary]:
        """One line per session — DC, user, live lease, peers, queue counts — in one query, sorted."""
        return await overview.session_summaries(self._db)

    async def leases(self) -> list[tuple[str, LeaseInfo, float]]:
        """(session, holder, seconds left) of every session leased now, by the database clock."""
        return await overview.live_leases(self._db)

    async def prune(self) -> maintenance.Pruned:
        """Delete every account's expired dedup keys and conversations; says how many of each."""
        return await maintenance.prune(self._db)

    async def check_schema(self, *, upgrade: bool = False) -> None:
        """Bring an empty database to head; raise `SchemaOutOfDate` if behind (unless `upgrade`)."""
        await migrate.ensure_schema(self.engine, self.placement, upgrade_if_behind=upgrade)

    async def check_encryption(self) -> None:
        """Raise `EncryptionError` unless the configured keys open every encrypted auth key stored."""
        await auth_keys.verify(self._db, self.cipher)

    async def auth_key_counts(self) -> dict[str | None, int]:
        """How many stored auth keys (sessions' and DCs') each encryption key id sealed; None counts
        the plaintext ones. Needs no key."""
        return await auth_keys.count_by_key_id(self._db)

    async def reencrypt_auth_keys(self, new_key: KeySource | None) -> int:
        """Re-encrypt every stored auth key with `new_key` (None: store them in plaintext), in one
        transaction, and use it from now on; returns how many rows changed."""
        target = encryption.key_ring(new_key)
        changed = await auth_keys.reencrypt(self._db, self.cipher, target)
        old = self.cipher.ring
        self.cipher.ring = target if target is None or old is None else target.with_older(old.keys)
        return changed

    async def ping(self) -> None:
        """Reach the database once: `DatabaseUnavailable` (naming host and port) if it cannot be reached
        within the connect timeout."""

        async def work(conn: AsyncConnection) -> None:
            await conn.exec_driver_sql("SELECT 1")

        await self._db.run(work, write=False)

    async def close(self) -> None:
        """Dispose the engine if `open_store` created it; an embedding application's engine is left alone.

        Session leases held through this store's accounts are released first. Never raises because the
        database is gone (that is logged at WARNING): a lease it cannot release simply expires.
        """
        for account in list(self._accounts.values()):
            try:
                await account.session.release_held()
            except Exception as error:
                self._closing_failed("releasing the lease of session " + repr(account.name), error)
        try:
            await self.writer.close()
        except Exception as error:
            self._closing_failed("finishing the group-commit writer", error)
        try:
            await self._db.close()
        except Exception as error:
            self._closing_failed("closing the read connection", error)
        if self._owns_engine:
            try:
                await _dispose(self.engine, self._db.connect_timeout)
            except Exception as error:
                self._closing_failed("closing the connections", error)

    def _closing_failed(self, doing: str, error: Exception) -> None:
        log.warning("closing the store at %s: %s failed (%s)", self._db.where, doing, type(error).__name__)

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"Store({url!r}, prefix={self.placement.prefix!r})"


async def open_store(
    url: str | URL = DEFAULT_URL,
    *,
    upgrade: bool = False,
    prefix: str = "tgpersist_",
    schema: str | None = None,
    queue_policy: QueuePolicy | None = None,
    encryption_key: KeySource | None = None,
    peer_cache_size: int = DEFAULT_PEER_CACHE_SIZE,
    peer_cache_ttl: float | timedelta | None = None,
    connect_timeout: float | None = None,
    **engine_options: Any,
) -> Store:
    """Open (creating if needed) a store at `url`; an empty database is migrated to head.

    A database behind head raises `SchemaOutOfDate` unless `upgrade=True`. Auth keys are encrypted with
    `encryption_key` (default: $TGPERSIST_ENCRYPTION_KEY); `EncryptionError` if it cannot open them.
    A database that cannot be reached within `connect_timeout` seconds (default: the URL's
    `connect_timeout`, else `DEFAULT_CONNECT_TIMEOUT`) raises `DatabaseUnavailable`.
    """
    if connect_timeout is not None:
        connect_timeout = check_seconds("connect_timeout", connect_timeout)
    engine = engines.create_engine(url, connect_timeout=connect_timeout, **engine_options)
    if connect_timeout is None:
        connect_timeout = urls.translate(url).connect_timeout or DEFAULT_CONNECT_TIMEOUT
    try:
        store = Store(
            engine,
            prefix=prefix,
            schema=schema,
            queue_policy=queue_policy,
            encryption_key=encryption_key,
            peer_cache_size=peer_cache_size,
            peer_cache_ttl=peer_cache_ttl,
            connect_timeout=connect_timeout,
        )
        store._owns_engine = True
        await store.ping()
        await store.check_schema(upgrade=upgrade)
        await store.check_encryption()
    except BaseException:
        await _dispose(engine, connect_timeout)
        raise
    return store


async def _dispose(engine: AsyncEngine, limit: float | None) -> None:
    """Close the engine's connections; a server that does not answer within `limit` seconds is not
    waited for (the pool is dropped, its sockets closed by the garbage collector)."""
    try:
        async with asyncio.timeout(limit):
            await engine.dispose()
    except TimeoutError:
        await engine.dispose(close=False)
