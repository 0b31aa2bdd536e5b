"""A throwaway PgBouncer (Debian's `/usr/sbin/pgbouncer`) in front of a test PostgreSQL server.

Configured as hosted providers run it: every database name passes through (`* =`), trust auth towards
the test server, and `ignore_startup_parameters = extra_float_digits` and nothing more, so that a
client which sends other startup parameters fails here as it would there. PgBouncer refuses to run
as root: then it runs as `postgres`, with its config, log and pid files in a directory that user owns.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine.url import make_url

from tgpersist.testing.postgres import free_port

BINARY_CANDIDATES = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
POOL_MODES = ("transaction", "session")


class PgBouncerUnavailable(RuntimeError):
    """No pgbouncer binary was found, or it did not start."""


def find_binary() -> Path:
    for candidate in BINARY_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    found = shutil.which("pgbouncer")
    if found:
        return Path(found)
    raise PgBouncerUnavailable("no pgbouncer found: install it (apt-get install pgbouncer)")


def _config(workdir: Path, server: str, port: int, pool_mode: str, pool_size: int) -> str:
    target = make_url(server)
    return f"""[databases]
* = host={target.host} port={target.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir / "userlist.txt"}
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = 1000
max_db_connections = 0
ignore_startup_parameters = extra_float_digits
logfile = {workdir / "pgbouncer.log"}
pidfile = {workdir / "pgbouncer.pid"}
admin_users = {target.username}
"""


@contextlib.contextmanager
def temporary_pgbouncer(server: str, *, pool_mode: str = "transaction", pool_size: int = 20) -> Iterator[str]:
    """Start PgBouncer in front of `server` (an asyncpg URL); yield the same URL pointing at PgBouncer
    (`?pgbouncer=true` added in transaction mode); stop it and delete its files afterwards."""
    if pool_mode not in POOL_MODES:
        raise ValueError(f"pool_mode must be one of {POOL_MODES}")
    binary = find_binary()
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    workdir = Path(tempfile.mkdtemp(prefix="tgpersist-pgbouncer-"))
    target = make_url(server)
    port = free_port()
    (workdir / "userlist.txt").write_text(f'"{target.username}" ""\n')
    config = workdir / "pgbouncer.ini"
    config.write_text(_config(workdir, server, port, pool_mode, pool_size))
    if as_root:
        for path in (workdir, config, workdir / "userlist.txt"):
            shutil.chown(path, "postgres")
    process = subprocess.Popen(
        [*prefix, str(binary), str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(port, process, workdir)
        url = target.set(port=port)
        if pool_mode == "transaction":
            url = url.update_query_dict({"pgbouncer": "true"})
        yield url.render_as_string(hide_password=False)
    finally:
        _stop(process, workdir)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_listening(port: int, process: subprocess.Popen[bytes], workdir: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PgBouncerUnavailable(f"pgbouncer exited: {_log(process, workdir)}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise PgBouncerUnavailable(f"pgbouncer did not listen within 30 s: {_log(process, workdir)}")


def _log(process: subprocess.Popen[bytes], workdir: Path) -> str:
    log = workdir / "pgbouncer.log"
    err = (
        process.stderr.read().decode(errors="replace")
        if process.poll() is not None and process.stderr
        else ""
    )
    return (err + (log.read_text() if log.exists() else "")).strip()[-2000:]


def _stop(process: subprocess.Popen[bytes], workdir: Path) -> None:
    """SIGTERM to PgBouncer itself (its pid file: `runuser` may sit in between), then wait for it."""
    pidfile = workdir / "pgbouncer.pid"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    if process.stderr:
        process.stderr.close()
