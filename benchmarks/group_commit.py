"""Group commit side by side with the raw drivers: small writes (`remember`, `enqueue`, `ack`) from 64
concurrent callers and from one caller, against one `BEGIN IMMEDIATE` / statement / `COMMIT` per call
on raw aiosqlite (and one transaction per call on raw asyncpg); and `load_state` under the lease
against Telethon's in-process `get_update_state`.

Each row's median is seconds per call (a round's wall time over its calls), so "x fastest raw" is the
inverse throughput ratio: 0.125 means 8 times the raw driver's calls per second.
`python -m benchmarks.group_commit [--quick]` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
from sqlalchemy.engine.url import make_url
from telethon.sessions import SQLiteSession

import tgpersist
from benchmarks import clients
from benchmarks.harness import (
    QUICK_ENV,
    RAW,
    TGPERSIST,
    Contestant,
    compete,
    databases,
    open_stores,
    per_call,
    quick,
    scaled,
)
from tgpersist import DurableUpdate, UpdateState

CALLERS = 64
PAYLOAD = b"u" * 256
RAW_TABLE = "raw_small_writes"


async def concurrently(calls: int, one: Callable[[int], Awaitable[Any]]) -> list[float]:
    """`calls` calls of `one(i)` by CALLERS concurrent callers (each calls in turn); seconds per call."""

    async def caller(first: int) -> None:
        for i in range(first, calls, CALLERS):
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(caller(c) for c in range(CALLERS)))
    return [(time.perf_counter() - start) / calls]


async def one_by_one(calls: int, one: Callable[[int], Awaitable[Any]]) -> list[float]:
    """`calls` calls of `one(i)` one after another; seconds per call (the round's wall time)."""
    start = time.perf_counter()
    for i in range(calls):
        await one(i)
    return [(time.perf_counter() - start) / calls]


# -- tgpersist ----------------------------------------------------------------------------------------
def tgpersist_writes(store: tgpersist.Store, backend: str, calls: int, callers: int) -> dict[str, Contestant]:
    """`remember`, `enqueue` and `ack` through the store, by `callers` (64 or 1) concurrent callers."""
    updates = store.account(f"group-{callers}").updates
    drive = concurrently if callers > 1 else one_by_one
    name = f"tgpersist {backend}" + (f", {callers} callers" if callers > 1 else "")

    async def remember(round_: int) -> list[float]:
        return await drive(calls, lambda i: updates.remember(f"m:{round_}:{i}"))

    async def enqueue(round_: int) -> list[float]:
        return await drive(calls, lambda i: updates.enqueue(DurableUpdate(PAYLOAD, id=f"e:{round_}:{i}")))

    async def fill(round_: int) -> None:
        await updates.enqueue_many(DurableUpdate(PAYLOAD, id=f"a:{round_}:{i}") for i in range(calls))

    async def ack(round_: int) -> list[float]:
        return await drive(calls, lambda i: updates.ack(f"a:{round_}:{i}"))

    note = "group commit" if callers > 1 else "a lone caller: its own transaction"
    return {
        "remember": Contestant(name, TGPERSIST, remember, note=note),
        "enqueue": Contestant(name, TGPERSIST, enqueue, note=note),
        "ack": Contestant(name, TGPERSIST, ack, setup=fill, note=note),
    }


# -- raw drivers ----------------------------------------------------------------------------------------
async def raw_aiosqlite(path: Path, calls: int) -> tuple[aiosqlite.Connection, dict[str, Contestant]]:
    """One BEGIN IMMEDIATE / statement / COMMIT per call on one aiosqlite connection (WAL, NORMAL):
    concurrent callers could only take turns on it, so they run one after another."""
    db = await aiosqlite.connect(path, isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL"):
        await db.execute(f"PRAGMA {pragma}")
    await db.execute(
        f"CREATE TABLE IF NOT EXISTS {RAW_TABLE} (s TEXT, k TEXT, payload BLOB, v REAL, PRIMARY KEY (s, k))"
    )

    async def transaction(sql: str, params: tuple[Any, ...]) -> None:
        await db.execute("BEGIN IMMEDIATE")
        await db.execute(sql, params)
        await db.commit()

    upsert = f"INSERT INTO {RAW_TABLE} (s, k, v) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
    insert = f"INSERT INTO {RAW_TABLE} (s, k, payload, v) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"

    async def remember(round_: int) -> list[float]:
        return await one_by_one(calls, lambda i: transaction(upsert, ("m", f"{round_}:{i}", 1.0)))

    async def enqueue(round_: int) -> list[float]:
        return await one_by_one(calls, lambda i: transaction(insert, ("e", f"{round_}:{i}", PAYLOAD, 1.0)))

    async def fill(round_: int) -> None:
        rows = [("a", f"{round_}:{i}", PAYLOAD, 1.0) for i in range(calls)]
        await db.executemany(insert, rows)

    async def ack(round_: int) -> list[float]:
        sql = f"DELETE FROM {RAW_TABLE} WHERE s = ? AND k = ?"
        return await one_by_one(calls, lambda i: transaction(sql, ("a", f"{round_}:{i}")))

    name, note = "raw aiosqlite", "BEGIN IMMEDIATE; statement; COMMIT per call"
    return db, {
        "remember": Contestant(name, RAW, remember, note=note),
        "enqueue": Contestant(name, RAW, enqueue, note=note),
        "ack": Contestant(name, RAW, ack, setup=fill, note=note),
    }


async def raw_asyncpg(url: str, calls: int) -> tuple[asyncpg.Pool, list[Contestant]]:
    """One transaction per `remember`-like insert on asyncpg: 64 callers on a pool of 16 connections,
    and one caller after another on one connection."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    pool = await asyncpg.create_pool(dsn, min_size=16, max_size=16)
    await pool.execute(
        f"CREATE TABLE IF NOT EXISTS {RAW_TABLE} (s TEXT, k TEXT, v FLOAT8, PRIMARY KEY (s, k))"
    )
    sql = f"INSERT INTO {RAW_TABLE} (s, k, v) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1"

    async def pooled(round_: int) -> list[float]:
        async def one(i: int) -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.fetchval(sql, "p", f"{round_}:{i}", 1.0)

        return await concurrently(calls, one)

    async def single(round_: int) -> list[float]:
        async with pool.acquire() as conn:

            async def one(i: int) -> None:
                async with conn.transaction():
                    await conn.fetchval(sql, "s", f"{round_}:{i}", 1.0)

            return await one_by_one(calls, one)

    return pool, [
        Contestant("raw asyncpg, 64 callers, pool of 16", RAW, pooled, note="one transaction per call"),
        Contestant("raw asyncpg, one connection", RAW, single, note="one transaction per call"),
    ]


# -- hot state ------------------------------------------------------------------------------------------
def tgpersist_hot_load(store: tgpersist.Store, backend: str, calls: int) -> Contestant:
    acct = store.account("hot-state")
    leases: list[Any] = []

    async def setup(round_: int) -> None:
        if not leases:
            leases.append(await acct.session.acquire(owner="bench", ttl=600))
            await acct.updates.save_state(UpdateState(1, 2, 3, 4))

    async def load(round_: int) -> list[float]:
        return await per_call([acct.updates.load_state for _ in range(calls)])

    return Contestant(
        f"tgpersist {backend}", TGPERSIST, load, setup=setup, note="under the lease: from memory"
    )


async def measure(urls: dict[str, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    rounds, calls = scaled(5, 2), scaled(2048, 512)
    with tempfile.TemporaryDirectory(prefix="tgpersist-bench-gc-") as tmp:
        workdir = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            stores = await open_stores(stack, urls)
            raw_db, raw = await raw_aiosqlite(workdir / "raw.db", calls)
            stack.push_async_callback(raw_db.close)
            many = tgpersist_writes(stores["sqlite"], "sqlite", calls, CALLERS)
            for op in ("remember", "enqueue", "ack"):
                operation = f"{op}, {CALLERS} concurrent callers (SQLite)"
                rows += await compete(operation, [many[op], raw[op]], rounds, "call")
            lone = tgpersist_writes(stores["sqlite"], "sqlite", calls // 4, 1)
            raw_db2, raw_lone = await raw_aiosqlite(workdir / "raw-lone.db", calls // 4)
            stack.push_async_callback(raw_db2.close)
            rows += await compete(
                "remember, one caller (SQLite)", [lone["remember"], raw_lone["remember"]], rounds, "call"
            )
            pool, raw_pg = await raw_asyncpg(urls["postgresql"], calls)
            stack.push_async_callback(pool.close)
            ours_pg = tgpersist_writes(stores["postgresql"], "postgresql", calls, CALLERS)["remember"]
            operation = f"remember, {CALLERS} concurrent callers (PostgreSQL)"
            rows += await compete(operation, [ours_pg, *raw_pg], rounds, "call")
            telethon = SQLiteSession(str(workdir / "telethon-hot"))
            stack.callback(telethon.close)
            telethon_save, telethon_load = clients.telethon_state(telethon, calls)
            await telethon_save.run(0)  # a stored state to read back
            hot = [tgpersist_hot_load(s, b, calls) for b, s in stores.items()]
            rows += await compete("load update state under the lease", [*hot, telethon_load], rounds, "call")
            for store in stores.values():
                await store.account("hot-state").session.release_held()
    if quick():
        for row in rows:
            row["note"] = (row["note"] + "; quick run").lstrip("; ")
    return rows


# -- running alone --------------------------------------------------------------------------------------
async def _main() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="tgpersist-bench-gc-") as tmp:
        async with databases(Path(tmp), "gc") as urls:
            return await measure(urls)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.group_commit")
    parser.add_argument("--quick", action="store_true")
    if parser.parse_args().quick:
        os.environ[QUICK_ENV] = "1"
    for row in asyncio.run(_main()):
        print(f"{row['operation']:<48} {row['implementation']:<40} {row['median_s'] * 1e6:9.1f} µs/call")
