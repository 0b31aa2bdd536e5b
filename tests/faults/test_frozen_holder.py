"""A process frozen (SIGSTOP) inside a transaction that locks a session's row: the server ends that
transaction after `idle_in_transaction_session_timeout` (15 s by default, see
`tgpersist.sql.session_settings`; 2 s here, through the URL), so a lease takeover that must update the
row waits seconds, not until the frozen process is woken or its host's TCP keepalive gives up."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from multiprocessing.synchronize import Event
from urllib.parse import quote

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

import tgpersist
from tgpersist import DatabaseUnavailable
from tgpersist.sql import session_settings

SPAWN = multiprocessing.get_context("spawn")


def _with_idle_timeout(url: str, value: str) -> str:
    return f"{url}?options={quote(f'-c idle_in_transaction_session_timeout={value}')}"


def _lock_the_session_row(url: str, ready: Event) -> None:
    """Another process: take a 1 s lease on `bot`, then sit inside a transaction holding its row."""

    async def body() -> None:
        async with await tgpersist.open_store(url) as store:
            await store.account("bot").session.acquire(owner="frozen", ttl=1, heartbeat=0)

            async def hold(conn: AsyncConnection) -> None:
                await conn.execute(text("SELECT 1 FROM tgpersist_sessions WHERE name = 'bot' FOR UPDATE"))
                ready.set()
                await asyncio.sleep(3600)

            await store._db.run(hold, write=True)

    asyncio.run(body())


async def _takeover_behind_a_frozen_holder(url: str, ttl: float) -> tuple[float, BaseException | str]:
    """Freeze a holder of the session row; how long the takeover took, and its owner or error."""
    ready = SPAWN.Event()
    process = SPAWN.Process(target=_lock_the_session_row, args=(url, ready))
    process.start()
    try:
        assert await asyncio.to_thread(ready.wait, 60)
        assert process.pid is not None
        os.kill(process.pid, signal.SIGSTOP)
        await asyncio.sleep(1.2)  # its 1 s lease is over: only the row lock stands in the way
        async with await tgpersist.open_store(url) as store:
            started = time.monotonic()
            try:
                lease = await store.account("bot").session.acquire(owner="taker", ttl=ttl, heartbeat=0)
            except DatabaseUnavailable as error:
                return time.monotonic() - started, error
            elapsed = time.monotonic() - started
            owner = lease.owner
            await lease.release()
            return elapsed, owner
    finally:
        if process.pid is not None:
            os.kill(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.join, 30)


async def test_the_server_ends_a_frozen_holders_transaction(pg_url: str) -> None:
    elapsed, outcome = await _takeover_behind_a_frozen_holder(_with_idle_timeout(pg_url, "2s"), ttl=30)
    assert outcome == "taker"
    assert elapsed < 10, f"the takeover waited {elapsed:.1f} s"


async def test_without_the_timeout_the_takeover_waits_until_its_own_deadline(pg_url: str) -> None:
    """The control: with the setting turned off (0), the row stays locked while the holder is frozen."""
    elapsed, outcome = await _takeover_behind_a_frozen_holder(_with_idle_timeout(pg_url, "0"), ttl=5)
    assert isinstance(outcome, DatabaseUnavailable)
    assert elapsed >= 3


async def _setting(url: str, name: str) -> str:
    async with await tgpersist.open_store(url) as store:

        async def show(conn: AsyncConnection) -> str:
            return str((await conn.exec_driver_sql(f"SHOW {name}")).scalar_one())

        return await store._db.run(show, write=False)


async def test_every_direct_connection_starts_with_the_defaults(pg_url: str) -> None:
    assert session_settings.DEFAULTS["idle_in_transaction_session_timeout"] == "15s"
    assert await _setting(pg_url, "idle_in_transaction_session_timeout") == "15s"
    assert await _setting(pg_url, "tcp_keepalives_idle") == "30"
    assert await _setting(pg_url, "tcp_keepalives_interval") == "10"
    assert await _setting(pg_url, "tcp_keepalives_count") == "3"
    # What the URL sets is left as it is.
    assert await _setting(_with_idle_timeout(pg_url, "5s"), "idle_in_transaction_session_timeout") == "5s"


async def test_a_unit_of_work_the_server_ended_for_idling_is_re_run(pg_url: str) -> None:
    """Our own transaction idles past the timeout only if its process starves: the server then ends the
    session before COMMIT, and the unit runs again on a new connection."""
    async with await tgpersist.open_store(_with_idle_timeout(pg_url, "1s")) as store:
        tries: list[int] = []

        async def work(conn: AsyncConnection) -> int:
            tries.append(len(tries))
            await conn.execute(text("SELECT 1"))
            if len(tries) == 1:
                await asyncio.sleep(2)  # the event loop of a starved process
            await conn.execute(text("SELECT 2"))
            return len(tries)

        assert await store._db.run(work, write=True) == 2
