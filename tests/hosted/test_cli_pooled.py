"""The CLI through transaction-pooling PgBouncer (the URL carries `?pgbouncer=true`), and its one-line
connection errors: host, port, database and the cause on stderr, a non-zero exit, no password."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.engine.url import make_url

import tgpersist
from tests.cli.run import cli
from tests.test_migrate import HEAD
from tgpersist import Session
from tgpersist.testing.postgres import free_port

PASSWORD = "s3cr3t-pw"


async def leave_named_statements(url: str) -> None:
    """A client with asyncpg's defaults through the pooler: its named statements stay behind on the
    server connection, where the next client (ours) would collide with them unless pooler-safe."""
    u = make_url(url)
    conn = await asyncpg.connect(host=u.host, port=u.port, user=u.username, database=u.database)
    try:
        for n in range(3):
            await conn.fetchval(f"SELECT {n}::int + $1::int", n)
    finally:
        await conn.close()


async def test_db_sessions_and_keys_commands_through_the_pooler(
    capsys: pytest.CaptureFixture[str], pooled_url: str
) -> None:
    await leave_named_statements(pooled_url)
    status, out, err = await cli(capsys, "db", "current", "--url", pooled_url)
    assert (status, out) == (2, "") and "tgpersist db upgrade" in err  # read-only: creates nothing
    assert await cli(capsys, "db", "upgrade", "--url", pooled_url) == (0, f"at {HEAD}\n", "")
    assert (await cli(capsys, "db", "check", "--url", pooled_url))[0::2] == (0, "")
    assert await cli(capsys, "db", "current", "--url", pooled_url) == (0, f"{HEAD} (head)\n", "")
    async with await tgpersist.open_store(pooled_url) as store:
        for name in ("alice", "bob"):
            await store.account(name).session.save(Session(name, dc_id=2, auth_key=bytes(range(256))))
    await leave_named_statements(pooled_url)
    status, out, err = await cli(capsys, "sessions", "list", "--url", pooled_url)
    assert (status, err) == (0, "")
    assert [line.split()[0] for line in out.splitlines()] == ["alice", "bob"], out
    assert await cli(capsys, "keys", "status", "--url", pooled_url) == (0, "plaintext: 2\n", "")


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert PASSWORD not in err
    return lines[0]


async def test_nothing_listening_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    url = f"postgresql://tg:{PASSWORD}@127.0.0.1:{port}/tgdb"
    status, out, err = await cli(capsys, "db", "current", "--url", url)
    assert (status, out) == (1, "")
    where = f"PostgreSQL database 'tgdb' at 127.0.0.1:{port}"
    assert one_line(err) == f"tgpersist: error: cannot connect to {where}: connection refused"


async def test_missing_database_through_the_pooler_is_one_line(
    capsys: pytest.CaptureFixture[str], transaction_pooler: str
) -> None:
    url = make_url(transaction_pooler).set(database="no_such_db", password=PASSWORD)
    status, out, err = await cli(
        capsys, "sessions", "list", "--url", url.render_as_string(hide_password=False)
    )
    assert (status, out) == (1, "")
    line = one_line(err)
    assert line.startswith(
        f"tgpersist: error: cannot connect to PostgreSQL database 'no_such_db' at 127.0.0.1:{url.port}: "
    )
    assert "no_such_db" in line.split(": ", 3)[-1]  # the server's own reason


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("statement_cache_size=x", "url parameter 'statement_cache_size': expected a whole number >= 0"),
        (
            "sslmode=maybe",
            "url parameter 'sslmode': expected one of disable, allow, prefer, require, verify-ca",
        ),
        ("password=" + PASSWORD, "url parameter 'password': not understood"),
    ],
)
async def test_bad_url_parameters_are_one_line_before_connecting(
    capsys: pytest.CaptureFixture[str], query: str, message: str
) -> None:
    url = f"postgres://tg:{PASSWORD}@127.0.0.1:{free_port()}/tgdb?{query}"
    status, out, err = await cli(capsys, "db", "check", "--url", url)
    assert (status, out) == (1, "")
    assert one_line(err).startswith(f"tgpersist: error: {message}")
