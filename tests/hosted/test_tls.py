"""TLS for real: a PostgreSQL server with a certificate for `localhost` signed by a CA made here.

`sslmode=require` encrypts without checking; `verify-ca` checks the chain; `verify-full` also the host
name, so reaching the same server as 127.0.0.1 fails with a typed `DatabaseUnavailable` naming TLS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine.url import make_url

import tgpersist
from tests.cli.run import cli
from tests.hosted.certificates import Certificates, make_certificates
from tgpersist import DatabaseUnavailable, Session
from tgpersist.testing.postgres import temporary_server


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"), server_names=("localhost",))


@pytest.fixture(scope="module")
def tls_server(certificates: Certificates) -> Iterator[str]:
    """`postgres://user@{host}:port/postgres`: fill in 127.0.0.1 or localhost."""
    with temporary_server(ssl=(certificates.server_cert, certificates.server_key)) as url:
        parsed = make_url(url)
        yield f"postgres://{parsed.username}@{{host}}:{parsed.port}/postgres"


def url_for(server: str, host: str, query: str) -> str:
    return server.format(host=host) + "?" + query


async def encrypted(url: str) -> bool:
    """Open a store at `url`, write and read, and ask the server whether this connection uses TLS."""
    async with await tgpersist.open_store(url) as store:
        await store.account("tls").session.save(Session("tls", dc_id=2, auth_key=bytes(range(256))))
        assert (await store.account("tls").session.load()).auth_key == bytes(range(256))  # type: ignore[union-attr]
        async with store.engine.connect() as conn:
            row = await conn.exec_driver_sql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            return bool(row.scalar_one())


@pytest.mark.parametrize(
    ("host", "query"),
    [
        ("127.0.0.1", "sslmode=require"),
        ("127.0.0.1", "ssl=true"),
        ("127.0.0.1", "sslmode=prefer"),
        ("127.0.0.1", "sslmode=verify-ca&sslrootcert={ca}"),
        ("localhost", "sslmode=verify-full&sslrootcert={ca}"),
        ("localhost", "sslrootcert={ca}"),
        ("localhost", "sslmode=verify-full&sslrootcert={ca}&sslcert={cert}&sslkey={key}"),
    ],
)
async def test_tls_connections(tls_server: str, certificates: Certificates, host: str, query: str) -> None:
    c = certificates
    filled = query.format(ca=c.ca, cert=c.server_cert, key=c.server_key)  # any pair serves as a client's
    assert await encrypted(url_for(tls_server, host, filled)) is True


async def test_sslmode_disable_is_plain(tls_server: str) -> None:
    assert await encrypted(url_for(tls_server, "127.0.0.1", "sslmode=disable")) is False


@pytest.mark.parametrize(
    ("host", "query", "reason"),
    [
        (
            "127.0.0.1",
            "sslmode=verify-full&sslrootcert={ca}",
            "IP address mismatch, certificate is not valid for '127.0.0.1'",
        ),
        ("localhost", "sslmode=verify-full&sslrootcert={other}", "unable to get local issuer certificate"),
        ("127.0.0.1", "sslmode=verify-ca&sslrootcert={other}", "unable to get local issuer certificate"),
    ],
)
async def test_failed_verification_is_a_typed_error(
    tls_server: str, certificates: Certificates, host: str, query: str, reason: str
) -> None:
    url = url_for(tls_server, host, query.format(ca=certificates.ca, other=certificates.other_ca))
    with pytest.raises(DatabaseUnavailable) as caught:
        await tgpersist.open_store(url)
    error = caught.value
    assert (error.host, error.port) == (host, make_url(url).port)
    assert error.problem.startswith("TLS: ") and reason in error.problem, error.problem


async def test_cli_prints_the_tls_failure_in_one_line(
    capsys: pytest.CaptureFixture[str], tls_server: str, certificates: Certificates
) -> None:
    url = url_for(tls_server, "127.0.0.1", f"sslmode=verify-full&sslrootcert={certificates.ca}")
    status, out, err = await cli(capsys, "db", "current", "--url", url)
    assert (status, out) == (1, "")
    port = make_url(url).port
    assert err.startswith(
        f"tgpersist: error: cannot connect to PostgreSQL database 'postgres' at 127.0.0.1:{port}: TLS: "
    )
    assert "certificate is not valid for '127.0.0.1'" in err and len(err.splitlines()) == 1


def test_sslrootcert_must_be_a_readable_file(tmp_path: Path) -> None:
    with pytest.raises(tgpersist.InvalidArgument, match="sslrootcert"):
        tgpersist.create_engine(
            f"postgres://u@localhost/db?sslmode=verify-full&sslrootcert={tmp_path}/none.crt"
        )
