"""Logs and metrics after a scripted workload, on SQLite and PostgreSQL: the dead-letter WARNING and
transaction-retry DEBUG records with their extra fields (and no secret anywhere in them), and every
instrument read back through the OpenTelemetry SDK's in-memory reader."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from sqlalchemy.engine.url import make_url

import tgpersist
from tgpersist import DurableUpdate, Peer, PeerType, QueuePolicy, Session, metrics
from tgpersist.sql import engines

AUTH_KEY = bytes((i * 7 + 3) % 256 for i in range(256))
API_HASH = "0123456789abcdef0123456789abcdef"


#: The account of the scripted workload: a name no other test uses.
NAME = "observed-alice"


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    metrics.configure(MeterProvider(metric_readers=[reader]))
    try:
        yield reader
    finally:
        metrics.configure()


def collected(reader: InMemoryMetricReader) -> dict[str, dict[tuple[tuple[str, Any], ...], Any]]:
    """name -> {sorted attributes: value (a sum/gauge value, or a histogram's count)}."""
    found: dict[str, dict[tuple[tuple[str, Any], ...], Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points = found.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    key = tuple(sorted((point.attributes or {}).items()))
                    points[key] = getattr(point, "value", None) if hasattr(point, "value") else point.count
    return found


@asynccontextmanager
async def table_locked(url: str, backend: str) -> AsyncIterator[None]:
    """Another connection holds a write lock on the database (SQLite) or the sessions table
    (PostgreSQL) until the block ends: writes meanwhile fail with a lock error and are retried."""
    if backend == "sqlite":
        raw = sqlite3.connect(make_url(url).database or "", isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            raw.execute("COMMIT")
            raw.close()
        return
    u = make_url(url)
    conn = await asyncpg.connect(host=u.host, port=u.port, user=u.username, database=u.database)
    tx = conn.transaction()
    await tx.start()
    await conn.execute("LOCK TABLE tgpersist_sessions IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        await tx.commit()
        await conn.close()


def short_lock_waits(backend: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Engine options (and on SQLite a busy timeout) that make a lock wait fail after 50 ms."""
    if backend == "sqlite":
        monkeypatch.setattr(engines, "SQLITE_BUSY_TIMEOUT_MS", 50)
        return {}
    return {"connect_args": {"server_settings": {"lock_timeout": "50"}}}


async def workload(url: str, backend: str, monkeypatch: pytest.MonkeyPatch) -> tgpersist.Store:
    """Claims, acks, fails, a dead letter, leases acquired, lost and released, peer hits and misses,
    a transaction retried behind a lock, queue depth from stats()."""
    options = short_lock_waits(backend, monkeypatch)
    policy = QueuePolicy(max_attempts=1)
    async with await tgpersist.open_store(url, queue_policy=policy, **options) as store:
        acct = store.account(NAME)
        await acct.session.save(Session(NAME, dc_id=2, auth_key=AUTH_KEY, api_hash=API_HASH))
        await acct.updates.enqueue_many(DurableUpdate(b"p", id=f"u{i}") for i in range(4))
        claimed = await acct.updates.claim(3, owner="w1")
        assert [u.id for u in claimed] == ["u0", "u1", "u2"]
        assert await acct.updates.ack_many(["u0", "u1"]) == ["u0", "u1"]
        assert await acct.updates.fail("u2", "ValueError: broken", owner="w1")  # 1 of 1 attempts: dead

        await acct.peers.save(Peer(5, PeerType.USER, access_hash=55))
        assert await acct.peers.get(5) is not None  # cached by the save: a hit
        assert await acct.peers.get(5) is not None
        assert await acct.peers.get(6) is None  # a miss

        lease = await acct.session.acquire(owner="bot-1", ttl=0.2, heartbeat=0)
        await asyncio.sleep(0.3)
        async with (
            await tgpersist.open_store(url) as other,
            other.account(NAME).session.lease(owner="bot-2", ttl=30, heartbeat=0),
        ):
            with pytest.raises(tgpersist.LeaseLost):
                await lease.renew()
        async with table_locked(url, backend):
            saving = asyncio.ensure_future(store.account("bob").session.save(Session("bob", dc_id=4)))
            await asyncio.sleep(0.3)
        await saving
        stats = await store.stats()
        assert (stats[NAME].available, stats[NAME].dead) == (1, 1)
    return store  # the queue-depth gauge reports the stores that are still alive


async def test_metrics_after_a_workload(
    reader: InMemoryMetricReader, backend: str, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hits, misses = metrics.peer_cache_lookups.hits, metrics.peer_cache_lookups.misses
    store = await workload(db_url, backend, monkeypatch)
    found = collected(reader)
    alice = (("session", NAME),)  # other tests' leftover timers may report their own sessions
    assert found["tgpersist.queue.claimed"].get(alice) == 3
    assert found["tgpersist.queue.acked"].get(alice) == 2
    assert found["tgpersist.queue.failed"].get(alice) == 1
    assert found["tgpersist.queue.dead_letters"].get(alice) == 1
    assert found["tgpersist.lease.acquired"].get(alice) == 2
    assert found["tgpersist.lease.lost"].get(alice) == 1
    assert found["tgpersist.lease.released"].get(alice) == 1
    cause = "database_locked" if backend == "sqlite" else "lock_not_available"
    assert found["tgpersist.transaction.retries"].get((("cause", cause),), 0) >= 1
    depth = found["tgpersist.queue.depth"]
    assert {dict(k)["state"]: v for k, v in depth.items() if dict(k)["session"] == NAME} == {
        "available": 1,
        "in_flight": 0,
        "retry_wait": 0,
        "dead": 1,
    }
    assert found["tgpersist.peer_cache.hits"][()] - hits == 2
    assert found["tgpersist.peer_cache.misses"][()] - misses == 1
    durations = {dict(k)["operation"]: count for k, count in found["tgpersist.operation.duration"].items()}
    assert durations["peers.read"] == 1  # the miss; hits are not timed
    assert (durations["queue.enqueue"], durations["queue.claim"], durations["queue.ack"]) == (1, 1, 1)
    assert (durations["queue.fail"], durations["session.save"], durations["peers.save_many"]) == (1, 2, 1)
    assert set(metrics.INSTRUMENTS) == set(found)
    del store


async def test_logs_carry_their_fields_and_no_secret(
    caplog: pytest.LogCaptureFixture, backend: str, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="tgpersist")
    await workload(db_url, backend, monkeypatch)
    [dead] = [
        r for r in caplog.records if r.name == "tgpersist.queue" and getattr(r, "session", None) == NAME
    ]
    assert dead.levelno == logging.WARNING
    assert (dead.session, dead.id, dead.attempts, dead.last_error) == (NAME, "u2", 1, "ValueError: broken")  # type: ignore[attr-defined]
    assert dead.getMessage() == f"update 'u2' of session {NAME!r} is a dead letter after 1 attempts"
    retries = [r for r in caplog.records if r.name == "tgpersist.database" and r.levelno == logging.DEBUG]
    assert retries and retries[0].attempt == 1  # type: ignore[attr-defined]
    assert retries[0].cause == ("database_locked" if backend == "sqlite" else "lock_not_available")  # type: ignore[attr-defined]
    secrets = (AUTH_KEY.hex(), repr(AUTH_KEY)[2:40], API_HASH)
    for record in caplog.records:
        text = " ".join(map(str, (record.getMessage(), record.args, vars(record))))
        assert not any(secret in text for secret in secrets), record


async def test_report_queue_depth_refreshes_the_gauge(reader: InMemoryMetricReader, db_url: str) -> None:
    async with await tgpersist.open_store(db_url) as store:
        await store.account("carol").updates.enqueue_many([b"a", b"b"])
        task = asyncio.ensure_future(metrics.report_queue_depth(store, interval=0.05))
        try:
            for _ in range(200):
                if store.last_stats:
                    break
                await asyncio.sleep(0.05)
            depth = collected(reader)["tgpersist.queue.depth"]
            assert depth[(("session", "carol"), ("state", "available"))] == 2
            await store.account("carol").updates.claim(1, owner="w")
            for _ in range(200):
                await asyncio.sleep(0.05)
                if store.last_stats["carol"].in_flight == 1:
                    break
            depth = collected(reader)["tgpersist.queue.depth"]
            assert depth[(("session", "carol"), ("state", "in_flight"))] == 1
        finally:
            task.cancel()
