"""Connections that heal, and a database out of reach: real faults against PostgreSQL (a proxy that
refuses, resets or never answers; backends terminated by the server; a real `pg_ctl restart`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

import tgpersist
from tests.cli.run import cli
from tgpersist import DatabaseUnavailable, Session, UpdateState
from tgpersist.testing.faults import FaultProxy
from tgpersist.testing.postgres import find_bindir, temporary_server

PASSWORD = "pw-that-must-not-leak"
#: Bounds every wait here, so that a hang fails the test instead of stalling the suite.
GUARD = 20.0


def with_password(url: str) -> str:
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


def assert_clean(error: DatabaseUnavailable, port: int) -> None:
    """Names host and port; carries neither the password nor a driver exception."""
    assert (error.host, error.port) == ("127.0.0.1", port)
    assert f"127.0.0.1:{port}" in str(error)
    assert PASSWORD not in str(error) and PASSWORD not in repr(error)
    assert error.__cause__ is None and error.__context__ is None


async def open_fails(proxy: FaultProxy, pg_url: str, **options: float) -> DatabaseUnavailable:
    """The clean `DatabaseUnavailable` that opening a store through `proxy` (with a password) raises."""
    with pytest.raises(DatabaseUnavailable) as caught:
        async with asyncio.timeout(GUARD):
            await tgpersist.open_store(with_password(proxy.url_for(pg_url)), **options)
    assert_clean(caught.value, proxy.port)
    return caught.value


async def test_a_server_that_never_answers_is_unavailable_within_the_connect_timeout(
    pg_url: str, proxy: FaultProxy
) -> None:
    proxy.blackhole()
    error = await open_fails(proxy, pg_url, connect_timeout=0.5)
    assert not error.outcome_unknown
    assert "0.5s" in error.problem
    assert proxy.accepted >= 1  # it really was the connect that hung


async def test_a_refused_connection_is_unavailable_naming_host_and_port(
    pg_url: str, proxy: FaultProxy
) -> None:
    proxy.cut()
    assert "refused" in (await open_fails(proxy, pg_url)).problem


@pytest.mark.parametrize("fault", ["cut", "pause"])
async def test_store_close_with_the_server_gone_raises_nothing_and_keeps_the_callers_error(
    pg_url: str, proxy: FaultProxy, fault: str
) -> None:
    store = await tgpersist.open_store(proxy.url_for(pg_url), connect_timeout=1)
    lease = await store.account("bot").session.acquire(owner="a", ttl=30)
    with pytest.raises(KeyError, match="the caller's own"):
        async with asyncio.timeout(GUARD), store:
            proxy.cut() if fault == "cut" else proxy.pause()
            raise KeyError("the caller's own")
    assert lease.released
    proxy.restore()
    async with await tgpersist.open_store(pg_url) as direct:
        holder = await direct.account("bot").session.holder()
        assert holder is not None and holder.owner == "a"  # not released: it simply expires


async def test_a_connection_terminated_while_idle_is_replaced_before_use(pg_url: str) -> None:
    async with await tgpersist.open_store(pg_url) as store:
        acct = store.account("a")
        await acct.session.save(Session("a", dc_id=2))
        await terminate_backends(pg_url)
        assert (await acct.session.load()) == Session("a", dc_id=2, **_times(await acct.session.load()))
        await acct.updates.save_state(UpdateState(pts=1, qts=2, date=3, seq=4))
        assert await acct.updates.load_state() == UpdateState(pts=1, qts=2, date=3, seq=4)


async def test_a_unit_whose_connection_died_before_commit_runs_again_on_a_new_one(pg_url: str) -> None:
    async with await tgpersist.open_store(pg_url) as store:
        tries: list[int] = []

        async def work(conn: AsyncConnection) -> int:
            pid = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            tries.append(pid)
            if len(tries) == 1:
                await terminate_backends(pg_url, pid)  # killed mid-transaction, before COMMIT
                await conn.execute(text("SELECT 1"))
            await conn.execute(text("CREATE TABLE healed (x int)"))
            return pid

        pid = await asyncio.wait_for(store._db.run(work, write=True), GUARD)
        assert len(tries) == 2 and pid == tries[1] != tries[0]
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM healed"))).scalar_one() == 0


async def test_a_connection_lost_after_commit_was_sent_is_outcome_unknown_and_not_retried(
    pg_url: str, proxy: FaultProxy
) -> None:
    async with await tgpersist.open_store(proxy.url_for(pg_url), connect_timeout=1) as store:
        tries = 0

        async def work(conn: AsyncConnection) -> None:
            nonlocal tries
            tries += 1
            await conn.execute(text("CREATE TABLE maybe (x int)"))
            proxy.cut()  # the COMMIT that follows meets a reset route

        with pytest.raises(DatabaseUnavailable) as caught:
            await asyncio.wait_for(store._db.run(work, write=True), GUARD)
        assert caught.value.outcome_unknown and "outcome is unknown" in str(caught.value)
        assert tries == 1
        assert_clean(caught.value, proxy.port)
        proxy.restore()


async def test_the_next_call_after_a_real_server_restart_succeeds() -> None:
    with temporary_server() as url:  # our own: the session's server must not restart under others
        async with await tgpersist.open_store(url) as store:
            acct = store.account("a")
            await acct.updates.save_state(UpdateState(pts=1, qts=1, date=1, seq=1))
            lease = await acct.session.acquire(owner="a", ttl=30, heartbeat=0)
            await asyncio.to_thread(pg_ctl_restart, await data_directory(url))
            assert await acct.updates.load_state() == UpdateState(pts=1, qts=1, date=1, seq=1)
            await acct.updates.save_state(UpdateState(pts=2, qts=1, date=1, seq=1))
            await lease.renew()
            assert await lease.release() is True
            assert await acct.updates.load_state() == UpdateState(pts=2, qts=1, date=1, seq=1)


# -- helpers -------------------------------------------------------------------------------------
def _times(session: Session | None) -> dict[str, object]:
    assert session is not None
    return {"created_at": session.created_at, "updated_at": session.updated_at}


async def terminate_backends(url: str, pid: int | None = None) -> None:
    """Have the server terminate `pid` (or every other connection to the database), as a restart does."""
    u = make_url(url)
    conn = await asyncpg.connect(host=u.host, port=u.port, user=u.username, database=u.database)
    try:
        if pid is not None:
            await conn.execute("SELECT pg_terminate_backend($1)", pid)
        else:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    finally:
        await conn.close()


async def data_directory(url: str) -> str:
    u = make_url(url)
    conn = await asyncpg.connect(host=u.host, port=u.port, user=u.username, database=u.database)
    try:
        return str(await conn.fetchval("SHOW data_directory"))
    finally:
        await conn.close()


def pg_ctl_restart(data: str) -> None:
    """`pg_ctl restart` (fast shutdown: every connection is terminated), waiting until it accepts again."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    log = str(Path(data).parent / "restart.log")
    command = [*prefix, str(find_bindir() / "pg_ctl"), "-D", data, "-l", log, "-m", "fast", "-w", "-t", "30"]
    subprocess.run([*command, "restart"], check=True, capture_output=True, stdin=subprocess.DEVNULL)


async def test_an_embedding_applications_engine_is_bounded_by_the_stores_connect_timeout(
    pg_url: str, proxy: FaultProxy
) -> None:
    engine = create_async_engine(with_password(proxy.url_for(pg_url)))  # asyncpg alone would wait 60 s
    try:
        store = tgpersist.Store(engine, connect_timeout=0.5)
        proxy.blackhole()
        with pytest.raises(DatabaseUnavailable) as caught:
            async with asyncio.timeout(GUARD):
                await store.list_sessions()
        assert_clean(caught.value, proxy.port)
        await store.close()
    finally:
        await engine.dispose(close=False)


async def test_the_cli_gives_up_after_its_connect_timeout_naming_host_and_port(
    pg_url: str, proxy: FaultProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy.blackhole()
    url = with_password(proxy.url_for(pg_url))
    status, _, err = await asyncio.wait_for(
        cli(capsys, "sessions", "list", "--url", url, "--connect-timeout", "0.5"), GUARD
    )
    assert status != 0
    assert f"127.0.0.1:{proxy.port}" in err and PASSWORD not in err


@pytest.mark.parametrize("bad", [0, -1, float("inf"), "10", True])
async def test_a_bad_connect_timeout_is_invalid_before_any_connection(bad: object) -> None:
    with pytest.raises(tgpersist.InvalidArgument) as caught:
        await tgpersist.open_store("postgresql+asyncpg://u:pw@127.0.0.1:1/x", connect_timeout=bad)  # type: ignore[arg-type]
    assert caught.value.field == "connect_timeout"
