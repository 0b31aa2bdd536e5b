"""How long importing a Telethon `.session` file with 100k peers takes, into SQLite and PostgreSQL.

The file is made with Telethon's own `SQLiteSession` (schema, DC, auth key, self entity, update state)
and its `entities` table filled with direct inserts in Telethon's row format: 70% users (most with a
username, a third with a phone), 25% channels, 5% basic chats. Each round imports it into a fresh
database; the table shows the median seconds for reading the file, writing the store, and in all.

    python -m benchmarks.import_100k [--peers 100000] [--rounds 3] [--postgres-url URL]

Without `--postgres-url` (or `TGPERSIST_TEST_POSTGRES_URL`) a throwaway local PostgreSQL is started.
Run by hand or from `nox -s bench`; not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from sqlalchemy.engine.url import make_url
from telethon.crypto import AuthKey
from telethon.sessions import SQLiteSession
from telethon.tl import types as tl

import tgpersist
from tgpersist.importers import read_session_file, write_snapshot
from tgpersist.testing.postgres import server_url


def make_file(path: Path, peers: int, seed: int = 1) -> Path:
    """A Telethon session file holding `peers` entities (plus the self entity)."""
    rng = random.Random(seed)
    session = SQLiteSession(str(path))
    session.set_dc(2, "149.154.167.51", 443)
    session.auth_key = AuthKey(rng.randbytes(256))
    session.process_entities(tl.contacts.ResolvedPeer(None, [tl.InputPeerUser(0, 777_000_001)], []))
    date = datetime.datetime.fromtimestamp(1_700_000_000, tz=datetime.UTC)
    session.set_update_state(0, tl.updates.State(1000, 10, date, 50, unread_count=0))
    rows = []
    now = int(time.time())
    for i in range(peers):
        roll = rng.random()
        if roll < 0.70:
            bare = 1_000_000 + i
            username = f"user_{i}" if rng.random() < 0.8 else None
            phone = str(440_000_000_000 + i) if rng.random() < 0.33 else None
            rows.append((bare, rng.getrandbits(63), username, phone, f"User {i}", now))
        elif roll < 0.95:
            marked = -1_000_000_000_000 - (1_000_000 + i)
            username = f"channel_{i}" if rng.random() < 0.5 else None
            rows.append((marked, rng.getrandbits(63), username, None, f"Channel {i}", now))
        else:
            rows.append((-(1_000_000 + i), 0, None, None, f"Group {i}", now))
    channels = [-marked - 1_000_000_000_000 for marked, *_ in rows if marked < -1_000_000_000_000][:200]
    for pts, channel_id in enumerate(channels, 5):
        session.set_update_state(channel_id, tl.updates.State(pts, 0, date, 0, unread_count=0))
    session.save()
    session.close()
    conn = sqlite3.connect(session.filename)
    with conn:
        conn.executemany("insert or replace into entities values (?,?,?,?,?,?)", rows)
    conn.close()
    return Path(session.filename)


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[str]:
    if url:
        yield url
    else:
        with server_url() as started:
            yield started


async def fresh_database(backend: str, workdir: Path, server: str | None) -> str:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{workdir / name}.db"
    assert server is not None
    base = make_url(server)
    conn = await asyncpg.connect(
        host=base.host, port=base.port, user=base.username, password=base.password, database=base.database
    )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return base.set(database=name).render_as_string(hide_password=False)


async def one_round(path: Path, url: str) -> tuple[float, float, int]:
    async with await tgpersist.open_store(url) as store:
        started = time.perf_counter()
        snapshot = await asyncio.to_thread(read_session_file, path, "bench")
        read = time.perf_counter() - started
        started = time.perf_counter()
        result = await write_snapshot(store, snapshot)
        write = time.perf_counter() - started
        stored = await store.account("bench").peers.count()
    assert stored == result.peers == len(snapshot.peers)
    return read, write, stored


async def main(peers: int, rounds: int, server: str | None, backends: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="tgpersist-bench-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        path = make_file(workdir / "big", peers)
        print(
            f"generated {path.name}: {peers} peers, {path.stat().st_size / 1e6:.1f} MB in "
            f"{time.perf_counter() - started:.1f} s"
        )
        print()
        print("| backend    | peers   | read file (s) | write store (s) | total (s) | peers/s |")
        print("|------------|---------|---------------|-----------------|-----------|---------|")
        for backend in backends:
            results = []
            for _ in range(rounds):
                url = await fresh_database(backend, workdir, server)
                results.append(await one_round(path, url))
            read = statistics.median(r[0] for r in results)
            write = statistics.median(r[1] for r in results)
            total = statistics.median(r[0] + r[1] for r in results)
            count = results[0][2]
            rate = count / total
            cells = f"{read:>13.2f} | {write:>15.2f} | {total:>9.2f} | {rate:>7.0f}"
            print(f"| {backend:<10} | {count:>7} | {cells} |")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres-url", default=None, help="an admin URL (postgresql+asyncpg://...)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "all"), default="all")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    if "postgresql" in backends:
        with postgres(args.postgres_url) as server:
            asyncio.run(main(args.peers, args.rounds, server, backends))
    else:
        asyncio.run(main(args.peers, args.rounds, None, backends))


if __name__ == "__main__":
    cli()
