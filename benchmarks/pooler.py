"""`python -m benchmarks.pooler [--quick]`: the latency cost of pooler mode, side by side in one run.

Three stores on one fresh PostgreSQL database, interleaved round by round (see `harness.compete`):
a direct connection with the defaults; a direct connection with pooler mode's settings
(`?pgbouncer=true`: no statement caches, so every statement is re-parsed), which is what being
pooler-safe by default would cost; and PgBouncer 1.18 in transaction mode in front, `?pgbouncer=true`.
Prints medians per call and their ratio to the direct default.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy.engine.url import make_url

import tgpersist
from benchmarks.harness import QUICK_ENV, TGPERSIST, Contestant, compete, per_call, scaled
from tgpersist import Peer, PeerType, Session
from tgpersist.testing.pgbouncer import temporary_pgbouncer
from tgpersist.testing.postgres import server_url

KEY = bytes(range(256))
NO_CACHES = "statement_cache_size=0&prepared_statement_cache_size=0"
Operation = Callable[[tgpersist.Account, int, int], list[Callable[[], Awaitable[Any]]]]


def session_save(acct: tgpersist.Account, round_: int, calls: int) -> list[Callable[[], Awaitable[Any]]]:
    sessions = [
        Session(acct.name, dc_id=2, auth_key=KEY, user_id=1 + round_ * calls + i) for i in range(calls)
    ]
    return [lambda s=s: acct.session.save(s) for s in sessions]


def session_load(acct: tgpersist.Account, round_: int, calls: int) -> list[Callable[[], Awaitable[Any]]]:
    return [acct.session.load for _ in range(calls)]


def peers_get(acct: tgpersist.Account, round_: int, calls: int) -> list[Callable[[], Awaitable[Any]]]:
    return [lambda i=i: acct.peers.get(1 + i % 100) for i in range(calls)]


def remember(acct: tgpersist.Account, round_: int, calls: int) -> list[Callable[[], Awaitable[Any]]]:
    return [lambda k=f"msg:{round_}:{i}": acct.updates.remember(k) for i in range(calls)]


def save_many(acct: tgpersist.Account, round_: int, calls: int) -> list[Callable[[], Awaitable[Any]]]:
    def batch(n: int) -> list[Peer]:
        return [Peer(1 + (n * 20 + i) % 500, PeerType.USER, access_hash=n) for i in range(20)]

    batches = [batch(round_ * calls + i) for i in range(calls)]
    return [lambda b=b: acct.peers.save_many(b) for b in batches]


OPERATIONS: dict[str, Operation] = {
    "session save": session_save,
    "session load": session_load,
    "peers get (cache off)": peers_get,
    "remember (new key)": remember,
    "save_many 20 peers": save_many,
}


async def run(urls: dict[str, str], rounds: int, calls: int) -> list[dict[str, Any]]:
    stores = {label: await tgpersist.open_store(url, peer_cache_size=0) for label, url in urls.items()}
    try:
        rows: list[dict[str, Any]] = []
        for operation, make_calls in OPERATIONS.items():
            contestants = []
            for label, store in stores.items():
                acct = store.account(f"bench-{label.split()[0]}-{uuid.uuid4().hex[:6]}")
                await acct.session.save(Session(acct.name, dc_id=2, auth_key=KEY))
                await acct.peers.save_many([Peer(i, PeerType.USER, access_hash=i) for i in range(1, 501)])

                async def timed(
                    round_: int, acct: tgpersist.Account = acct, make: Operation = make_calls
                ) -> list[float]:
                    return await per_call(make(acct, round_, calls))

                contestants.append(Contestant(label, TGPERSIST, timed))
            rows.extend(await compete(operation, contestants, rounds, "call"))
        return rows
    finally:
        for store in stores.values():
            await store.close()


async def on_server(server: str, sql: str) -> None:
    u = make_url(server)
    conn = await asyncpg.connect(host=u.host, port=u.port, user=u.username, database=u.database)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def report(rows: list[dict[str, Any]]) -> None:
    baseline = {r["operation"]: r["median_s"] for r in rows if r["implementation"] == "direct, defaults"}
    print(f"{'operation':<24} {'implementation':<36} {'median':>10} {'ratio':>6}")
    for row in rows:
        ratio = row["median_s"] / baseline[row["operation"]]
        median = f"{row['median_s'] * 1e3:.3f} ms"
        print(f"{row['operation']:<24} {row['implementation']:<36} {median:>10} {ratio:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    if parser.parse_args().quick:
        os.environ[QUICK_ENV] = "1"
    rounds, calls = scaled(9, 3), scaled(60, 20)
    with server_url() as server:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        asyncio.run(on_server(server, f'CREATE DATABASE "{name}"'))
        direct = make_url(server).set(database=name).render_as_string(hide_password=False)
        try:
            measure(server, direct, rounds, calls)
        finally:
            asyncio.run(on_server(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def measure(server: str, direct: str, rounds: int, calls: int) -> None:
    """Run every operation on the three stores (direct, direct without caches, through PgBouncer)."""
    with temporary_pgbouncer(server, pool_mode="transaction") as pooler:
        pooled = make_url(pooler).set(database=make_url(direct).database).render_as_string(False)
        urls = {
            "direct, defaults": direct,
            "direct, statement caches off": f"{direct}?{NO_CACHES}",
            "PgBouncer transaction, pgbouncer=true": pooled,
        }
        report(asyncio.run(run(urls, rounds, calls)))


if __name__ == "__main__":
    main()
