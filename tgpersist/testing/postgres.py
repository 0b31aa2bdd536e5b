"""A throwaway PostgreSQL server for tests: Debian's binaries, a temporary data directory, loopback only.

As root the server runs as the `postgres` user (PostgreSQL refuses to run as root). `fsync=off`: the
data is thrown away anyway. Used by our own test suite and by anyone running the conformance suite.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

URL_ENV = "TGPERSIST_TEST_POSTGRES_URL"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries were found, or the server did not start."""


def find_bindir() -> Path:
    """The directory holding initdb and pg_ctl (Debian puts them under /usr/lib/postgresql/<v>/bin)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    for directory in candidates:
        if Path(directory, "initdb").is_file():
            return Path(directory)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailable("no initdb found: install PostgreSQL (apt-get install postgresql)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def temporary_server(*, ssl: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Start a server; yield an asyncpg URL of its `postgres` database; stop and delete it afterwards.

    `ssl=(certificate file, key file)` also serves TLS with that certificate (`ssl=on`).
    """
    bindir = find_bindir()
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    user = "postgres" if as_root else (os.environ.get("USER") or "postgres")
    workdir = Path(tempfile.mkdtemp(prefix="tgpersist-pg-"))
    data, sockets = workdir / "data", workdir / "sock"
    sockets.mkdir()
    if as_root:
        shutil.chown(workdir, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    log = workdir / "server.log"

    def run(*args: str) -> None:
        result = subprocess.run([*prefix, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            detail = log.read_text() if log.exists() else ""
            raise PostgresUnavailable(f"{args[0]} failed: {result.stderr.strip()}\n{detail}")

    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", user, "-E", "UTF8", "--no-sync")
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sockets} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    if ssl is not None:
        options += " " + _ssl_options(workdir, *ssl, owner="postgres" if as_root else None)
    try:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        yield f"postgresql+asyncpg://{user}@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(Exception):
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        for _ in range(50):
            try:
                shutil.rmtree(workdir)
                break
            except OSError:
                time.sleep(0.1)


def _ssl_options(workdir: Path, certificate: Path, key: Path, *, owner: str | None) -> str:
    """Copy the server's certificate and key where the server user may read them (the key 0600, as
    PostgreSQL demands) and return the `-c` options that switch TLS on."""
    cert_copy, key_copy = workdir / "server.crt", workdir / "server.key"
    shutil.copyfile(certificate, cert_copy)
    shutil.copyfile(key, key_copy)
    key_copy.chmod(0o600)
    if owner is not None:
        shutil.chown(cert_copy, owner)
        shutil.chown(key_copy, owner)
    return f"-c ssl=on -c ssl_cert_file={cert_copy} -c ssl_key_file={key_copy}"


@contextlib.contextmanager
def server_url() -> Iterator[str]:
    """`TGPERSIST_TEST_POSTGRES_URL` if set, else a temporary server for the duration."""
    configured = os.environ.get(URL_ENV)
    if configured:
        yield configured
        return
    with temporary_server() as url:
        yield url
