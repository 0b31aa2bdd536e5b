"""URL translation: every spelling we accept and what it becomes, every one we refuse and how.

The table tests need no database; the last tests open real stores through pasted spellings on both
backends. No message may quote the password (or the value of a parameter we do not know).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine.url import make_url

import tgpersist
from tgpersist import InvalidArgument, UnsupportedDatabase
from tgpersist.sql import engines, urls

PW = "pw-S3cret"
PG = f"tg:{PW}@db.example.com:6543/app"

ACCEPTED: list[tuple[str, str, dict[str, Any]]] = [
    # (url, SQLAlchemy URL it becomes, expected fields of the EngineTarget / connect args)
    (f"postgresql://{PG}", "postgresql+asyncpg://tg:***@db.example.com:6543/app", {}),
    (f"postgres://{PG}", "postgresql+asyncpg://tg:***@db.example.com:6543/app", {}),
    (f"postgresql+asyncpg://{PG}", "postgresql+asyncpg://tg:***@db.example.com:6543/app", {}),
    (f"postgres+asyncpg://{PG}", "postgresql+asyncpg://tg:***@db.example.com:6543/app", {}),
    ("POSTGRES://tg@h/app", "postgresql+asyncpg://tg@h/app", {}),
    ("postgresql://tg@h", "postgresql+asyncpg://tg@h", {}),
    (
        f"postgres://{PG}?pgbouncer=true",
        "postgresql+asyncpg://tg:***@db.example.com:6543/app",
        {"pooler": True, "statement_cache_size": 0, "prepared_statement_cache_size": 0},
    ),
    ("postgres://tg@h/app?pgbouncer=1", "postgresql+asyncpg://tg@h/app", {"pooler": True}),
    ("postgres://tg@h/app?pgbouncer=false", "postgresql+asyncpg://tg@h/app", {"pooler": False}),
    (
        "postgres://tg@h/app?pgbouncer=true&statement_cache_size=0",
        "postgresql+asyncpg://tg@h/app",
        {"pooler": True},
    ),
    (
        "postgres://tg@h/app?statement_cache_size=0",
        "postgresql+asyncpg://tg@h/app",
        {"statement_cache_size": 0},
    ),
    (
        "postgres://tg@h/app?prepared_statement_cache_size=500",
        "postgresql+asyncpg://tg@h/app",
        {"prepared_statement_cache_size": 500},
    ),
    ("postgres://tg@h/app?sslmode=disable", "postgresql+asyncpg://tg@h/app", {"ssl": False}),
    ("postgres://tg@h/app?sslmode=allow", "postgresql+asyncpg://tg@h/app", {"ssl": "allow"}),
    ("postgres://tg@h/app?sslmode=prefer", "postgresql+asyncpg://tg@h/app", {"ssl": "prefer"}),
    (
        "postgres://tg@h/app?sslmode=require",
        "postgresql+asyncpg://tg@h/app",
        {"ssl": ("require", False, False)},
    ),
    ("postgres://tg@h/app?ssl=true", "postgresql+asyncpg://tg@h/app", {"ssl": ("require", False, False)}),
    ("postgres://tg@h/app?ssl=require", "postgresql+asyncpg://tg@h/app", {"ssl": ("require", False, False)}),
    (
        "postgres://tg@h/app?sslmode=require&sslrootcert=system",
        "postgresql+asyncpg://tg@h/app",
        {"ssl": ("verify-ca", True, False)},
    ),
    (
        "postgres://tg@h/app?sslmode=verify-ca&sslrootcert=system",
        "postgresql+asyncpg://tg@h/app",
        {"ssl": ("verify-ca", True, False)},
    ),
    (
        "postgres://tg@h/app?sslmode=verify-full&sslrootcert=system",
        "postgresql+asyncpg://tg@h/app",
        {"ssl": ("verify-full", True, True)},
    ),
    (
        "postgres://tg@h/app?sslrootcert=system",
        "postgresql+asyncpg://tg@h/app",
        {"ssl": ("verify-full", True, True)},
    ),
    ("postgres://tg@h/app?connect_timeout=7", "postgresql+asyncpg://tg@h/app", {"connect_timeout": 7.0}),
    ("postgres://tg@h/app?connect_timeout=2.5", "postgresql+asyncpg://tg@h/app", {"connect_timeout": 2.5}),
    ("postgres://tg@h/app?connect_timeout=0", "postgresql+asyncpg://tg@h/app", {"connect_timeout": None}),
    (
        "postgres://tg@h/app?application_name=bot-7",
        "postgresql+asyncpg://tg@h/app",
        {"server_settings": {"application_name": "bot-7"}},
    ),
    (
        "postgres://tg@h/app?options=-c%20statement_timeout%3D5s%20-c%20lock_timeout%3D1s",
        "postgresql+asyncpg://tg@h/app",
        {"server_settings": {"statement_timeout": "5s", "lock_timeout": "1s"}, "transaction_settings": {}},
    ),
    (
        "postgres://tg@h/app?options=--search-path%3Dtg,public",
        "postgresql+asyncpg://tg@h/app",
        {"server_settings": {"search_path": "tg,public"}},
    ),
    (
        "postgres://tg@h/app?options=-cstatement_timeout%3D5s&pgbouncer=true&application_name=a",
        "postgresql+asyncpg://tg@h/app",
        {
            "pooler": True,
            "server_settings": {"application_name": "a"},
            "transaction_settings": {"statement_timeout": "5s"},
        },
    ),
    (
        "postgres://tg@h/app?search_path=tg&pgbouncer=true",
        "postgresql+asyncpg://tg@h/app",
        {"pooler": True, "transaction_settings": {"search_path": "tg"}},
    ),
    (
        "postgres://tg@h/app?search_path=tg",
        "postgresql+asyncpg://tg@h/app",
        {"server_settings": {"search_path": "tg"}},
    ),
    ("postgres://tg@h/app?channel_binding=prefer", "postgresql+asyncpg://tg@h/app", {}),
    ("postgres://tg@/app?host=/cloudsql/p:r:i", "postgresql+asyncpg://tg@/app?host=/cloudsql/p:r:i", {}),
    ("sqlite:///tg.db", "sqlite+aiosqlite:///tg.db", {}),
    ("sqlite:////var/lib/tg.db", "sqlite+aiosqlite:////var/lib/tg.db", {}),
    ("sqlite+aiosqlite:///tg.db", "sqlite+aiosqlite:///tg.db", {}),
    ("sqlite://", "sqlite+aiosqlite://", {}),
    ("sqlite:///:memory:", "sqlite+aiosqlite:///:memory:", {}),
    ("sqlite:///tg.db?timeout=5", "sqlite+aiosqlite:///tg.db?timeout=5", {}),
    ("sqlite:///file:tg.db?mode=ro&uri=true", "sqlite+aiosqlite:///file:tg.db?mode=ro&uri=true", {}),
]

REJECTED: list[tuple[str, type[Exception], str]] = [
    (f"mysql://{PG}", UnsupportedDatabase, "'mysql' databases are not supported"),
    (f"postgresql+psycopg://{PG}", UnsupportedDatabase, "through asyncpg, not 'psycopg'"),
    (f"postgresql+psycopg2://{PG}", UnsupportedDatabase, "through asyncpg, not 'psycopg2'"),
    ("sqlite+pysqlite:///tg.db", UnsupportedDatabase, "through aiosqlite, not 'pysqlite'"),
    (f"redis://{PG}", UnsupportedDatabase, "'redis' databases are not supported"),
    ("not a url", InvalidArgument, "url: not a database URL"),
    (f"://{PG}", InvalidArgument, "url: not a database URL"),
    (f"postgres://{PG}?foo={PW}", InvalidArgument, "url parameter 'foo': not understood"),
    (f"postgres://{PG}?password={PW}", InvalidArgument, "url parameter 'password': not understood"),
    (
        f"postgres://{PG}?target_session_attrs=read-write",
        InvalidArgument,
        "'target_session_attrs': not understood",
    ),
    (f"postgres://{PG}?host=/a&host=/b", InvalidArgument, "url parameter 'host': given more than once"),
    (f"postgres://{PG}?sslmode={PW}", InvalidArgument, "url parameter 'sslmode': expected one of"),
    (f"postgres://{PG}?sslmode=verify-full", InvalidArgument, "'sslrootcert': sslmode=verify-full needs"),
    (f"postgres://{PG}?sslmode=verify-ca", InvalidArgument, "'sslrootcert': sslmode=verify-ca needs"),
    (
        f"postgres://{PG}?sslmode=disable&sslrootcert=system",
        InvalidArgument,
        "'sslmode': disable contradicts",
    ),
    (f"postgres://{PG}?sslrootcert=/nonexistent/{PW}.crt", InvalidArgument, "'sslrootcert': cannot load it"),
    (f"postgres://{PG}?sslkey=/k.pem", InvalidArgument, "'sslkey': needs sslcert"),
    (
        f"postgres://{PG}?sslmode=require&sslcert=/nonexistent.pem",
        InvalidArgument,
        "'sslcert': cannot load it",
    ),
    (
        f"postgres://{PG}?pgbouncer=maybe",
        InvalidArgument,
        "url parameter 'pgbouncer': expected true or false",
    ),
    (f"postgres://{PG}?pgbouncer=true&pgbouncer=false", InvalidArgument, "'pgbouncer': given more than once"),
    (f"postgres://{PG}?connect_timeout=soon", InvalidArgument, "'connect_timeout': expected a number"),
    (f"postgres://{PG}?connect_timeout=-1", InvalidArgument, "'connect_timeout': expected a finite"),
    (f"postgres://{PG}?connect_timeout=inf", InvalidArgument, "'connect_timeout': expected a finite"),
    (f"postgres://{PG}?connect_timeout=nan", InvalidArgument, "'connect_timeout': expected a finite"),
    (f"postgres://{PG}?statement_cache_size=-1", InvalidArgument, "'statement_cache_size': expected a whole"),
    (f"postgres://{PG}?pgbouncer=true&statement_cache_size=100", InvalidArgument, "must be 0 (or absent)"),
    (
        f"postgres://{PG}?pgbouncer=true&prepared_statement_cache_size=5",
        InvalidArgument,
        "'prepared_statement_cache_size': must be 0",
    ),
    (f"postgres://{PG}?options=statement_timeout%3D5s", InvalidArgument, "'options': expected -c name=value"),
    (f"postgres://{PG}?options=-c%20statement_timeout", InvalidArgument, "'options': expected -c name=value"),
    (f"postgres://{PG}?options=-c%20%22a%3Db", InvalidArgument, "'options': unbalanced quotes"),
    (f"postgres://{PG}?options=-c%20bad%3Bname%3D1", InvalidArgument, "'options': expected -c name=value"),
    (f"postgres://{PG}?channel_binding=require", InvalidArgument, "asyncpg cannot do channel binding"),
    (
        "sqlite:///tg.db?pgbouncer=true",
        InvalidArgument,
        "url parameter 'pgbouncer': not understood for SQLite",
    ),
    (
        "sqlite:///tg.db?isolation_level=DEFERRED",
        InvalidArgument,
        "'isolation_level': not understood for SQLite",
    ),
    ("sqlite:///tg.db?uri=perhaps", InvalidArgument, "url parameter 'uri': expected true or false"),
]


def _ssl_shape(value: Any) -> Any:
    """An `SSLContext` as (mode it implements, verifies the certificate, checks the host name)."""
    if not isinstance(value, ssl.SSLContext):
        return value
    verifies = value.verify_mode == ssl.CERT_REQUIRED
    mode = "verify-full" if value.check_hostname else ("verify-ca" if verifies else "require")
    return (mode, verifies, value.check_hostname)


@pytest.mark.parametrize(("url", "becomes", "expected"), ACCEPTED, ids=[row[0] for row in ACCEPTED])
def test_accepted_spellings(url: str, becomes: str, expected: dict[str, Any]) -> None:
    target = urls.translate(url)
    assert target.url.render_as_string(hide_password=True) == make_url(becomes).render_as_string()
    if target.url.password is not None:
        assert target.url.password == PW  # kept for connecting, hidden when shown
    got: dict[str, Any] = {
        "pooler": target.pooler,
        "connect_timeout": target.connect_timeout,
        "transaction_settings": target.transaction_settings,
        "ssl": _ssl_shape(target.connect_args.get("ssl")),
        "server_settings": target.connect_args.get("server_settings"),
        "statement_cache_size": target.connect_args.get("statement_cache_size"),
        "prepared_statement_cache_size": target.connect_args.get("prepared_statement_cache_size"),
    }
    defaults = {k: None for k in got} | {"pooler": False, "transaction_settings": {}}
    if expected.get("pooler"):  # pooler mode always turns both statement caches off
        defaults |= {"statement_cache_size": 0, "prepared_statement_cache_size": 0}
        assert target.connect_args["prepared_statement_name_func"]() == ""  # asyncpg's unnamed statement
    else:
        assert "prepared_statement_name_func" not in target.connect_args
    assert got == defaults | expected


@pytest.mark.parametrize(("url", "error", "message"), REJECTED, ids=[row[0] for row in REJECTED])
def test_rejected_spellings(url: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        urls.translate(url)
    assert message in str(caught.value)
    assert PW not in str(caught.value) and PW not in repr(caught.value)
    # No chained driver or parser exception that would carry the URL along.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__ | (
        caught.value.__context__ is None
    )
    with pytest.raises(error):
        engines.create_engine(url)  # refused before any engine exists


def test_a_sqlalchemy_url_object_is_accepted() -> None:
    target = urls.translate(make_url(f"postgres://{PG}?pgbouncer=true"))
    assert (target.url.drivername, target.pooler) == ("postgresql+asyncpg", True)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts TCP connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("query", "keyword"),
    [("connect_timeout=0.5", None), ("connect_timeout=600", 0.5)],
    ids=["url", "keyword"],
)
async def test_connect_timeout_from_the_url_or_the_keyword(
    silent_port: int, query: str, keyword: float | None
) -> None:
    """A server that never answers: the URL's connect_timeout applies, and the keyword overrides it
    (were it ignored, the 600 s of the URL would run into the test's timeout)."""
    url = f"postgres://tg:{PW}@127.0.0.1:{silent_port}/app?{query}"
    options = {} if keyword is None else {"connect_timeout": keyword}
    with pytest.raises(tgpersist.DatabaseUnavailable) as caught:
        await tgpersist.open_store(url, **options)
    assert (caught.value.host, caught.value.port) == ("127.0.0.1", silent_port)
    # asyncpg's own connect timeout, or the store's checkout bound of the same length, whichever fires first
    assert caught.value.problem in ("timed out", "no connection within 0.5s")
    assert PW not in str(caught.value)


def pasted(url: str, scheme: str) -> str:
    """`url` (one of our test database URLs) as a user would paste it, with `scheme`."""
    return scheme + url.split("://", 1)[1]


@pytest.mark.parametrize("spelling", ["plain", "asyncpg"])
async def test_pasted_spellings_open_real_stores(backend: str, db_url: str, spelling: str) -> None:
    if backend == "sqlite":
        url = pasted(db_url, "sqlite://" if spelling == "plain" else "sqlite+aiosqlite://")
    else:
        url = pasted(db_url, "postgres://" if spelling == "plain" else "postgresql://")
        url += "?application_name=tg-test&connect_timeout=20&options=-c%20statement_timeout%3D30s"
    async with await tgpersist.open_store(url) as store:
        await store.account("a").session.save(tgpersist.Session("a", dc_id=2))
        assert await store.list_sessions() == ["a"]
        if backend == "postgresql":
            async with store.engine.connect() as conn:
                row = (
                    await conn.exec_driver_sql(
                        "SELECT current_setting('application_name'), current_setting('statement_timeout')"
                    )
                ).one()
            assert tuple(row) == ("tg-test", "30s")
