"""Peers side by side: bulk upsert (10k and 100k, new and overwrite) and lookups by id and username
(cold: first lookup of each peer; hot: a working set of 100 peers looked up again and again), for
tgpersist on SQLite and PostgreSQL, Telethon, Kurigram and the raw drivers, interleaved round by round.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
from pyrogram.storage import SQLiteStorage

import tgpersist
from benchmarks import clients
from benchmarks.data import Users, users
from benchmarks.harness import TGPERSIST, Contestant, compete, per_call, quick, scaled

READS = "reads"  # the account (session name) every lookup benchmark reads


def tgpersist_bulk(bulk: clients.Bulk, store: tgpersist.Store, backend: str) -> Contestant:
    state: dict[str, Any] = {}

    async def setup(round_: int) -> None:
        account = store.account(bulk.session(f"tg{backend}", round_))
        if bulk.mode == "overwrite" and round_ == 0:
            await account.peers.save_many(bulk.prefill.peers)
        state["peers"] = account.peers
        state["data"] = bulk.data(round_).peers

    async def run(round_: int) -> None:
        await state["peers"].save_many(state["data"])

    return Contestant(
        f"tgpersist {backend}", TGPERSIST, run, setup, "save_many(Peer objects), one transaction"
    )


def tgpersist_lookups(look: clients.Lookups, store: tgpersist.Store, backend: str, by: str) -> Contestant:
    peers = store.account(READS).peers

    def keys(round_: int) -> list[Any]:
        return look.ids(round_) if by == "id" else look.usernames(round_)

    async def setup(round_: int) -> None:
        cache = peers.cache
        assert cache is not None
        cache.invalidate()
        if look.hot:
            for key in keys(round_)[:100]:
                await (peers.get(key) if by == "id" else peers.get_by_username(key))

    async def run(round_: int) -> list[float]:
        get = peers.get if by == "id" else peers.get_by_username
        return await per_call([lambda k=k: get(k) for k in keys(round_)])

    note = "peer cache hit" if look.hot else "cache miss: one SELECT, then cached"
    return Contestant(f"tgpersist {backend}", TGPERSIST, run, setup, note)


async def bulk_operations(
    stores: dict[str, tgpersist.Store],
    urls: dict[str, str],
    pg: asyncpg.Connection,
    workdir: Path,
    storages: list[SQLiteStorage],
    only_others: bool,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n, label, rounds in ((10_000, "10k", scaled(7, 3)), (100_000, "100k", scaled(3, 1))):
        generations = [users(n, g) for g in range(3)]
        for mode in ("new", "overwrite"):
            bulk = clients.Bulk(label, mode, generations[0], generations[1:])
            contestants = [] if only_others else [tgpersist_bulk(bulk, stores[b], b) for b in stores]
            contestants += [
                clients.raw_sqlite_bulk(bulk, clients.sqlite_path(urls["sqlite"])),
                # asyncpg executemany is the slowest method by far: measured at 10k only, to save time
                *(
                    clients.raw_asyncpg_bulk(bulk, pg, m)
                    for m in ("executemany", "unnest", "copy")
                    if n == 10_000 or m != "executemany"
                ),
                clients.telethon_bulk(bulk, workdir),
                clients.kurigram_bulk(bulk, workdir, storages),
            ]
            if n == 10_000:
                contestants += [
                    clients.telethon_bulk(bulk, workdir, wal=True),
                    clients.kurigram_bulk(bulk, workdir, storages, wal=True),
                ]
            rows += await compete(f"bulk upsert {label} peers ({mode})", contestants, rounds, "batch")
        del generations
    return rows


async def lookup_operations(
    data: Users,
    stores: dict[str, tgpersist.Store],
    urls: dict[str, str],
    pg: asyncpg.Connection,
    workdir: Path,
    storages: list[SQLiteStorage],
    only_others: bool,
) -> list[dict[str, Any]]:
    telethon, kurigram = await clients.seeded_clients(data, workdir, storages)
    rows: list[dict[str, Any]] = []
    rounds = scaled(5, 2)
    for by in ("id", "username"):
        for hot in (False, True):
            look = clients.Lookups(data, scaled(2000, 500) if hot else scaled(500, 200), hot)
            contestants = [] if only_others else [tgpersist_lookups(look, stores[b], b, by) for b in stores]
            contestants += [
                *clients.raw_sqlite_lookups(look, clients.sqlite_path(urls["sqlite"]), READS, by),
                clients.raw_asyncpg_lookups(look, pg, READS, by),
                clients.kurigram_lookups(look, kurigram, by),
                clients.telethon_lookups(look, telethon, by),
            ]
            operation = f"get peer by {by} ({'hot' if hot else 'cold'})"
            rows += await compete(operation, contestants, rounds, "call")
    telethon.close()
    return rows


async def measure(urls: dict[str, str], *, only_others: bool = False) -> list[dict[str, Any]]:
    """Every peer operation side by side (`only_others`: the clients and raw drivers alone)."""
    rows: list[dict[str, Any]] = []
    storages: list[SQLiteStorage] = []
    with tempfile.TemporaryDirectory(prefix="tgpersist-bench-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            stores = {}
            for backend, url in urls.items():
                stores[backend] = await stack.enter_async_context(await tgpersist.open_store(url))
            pg = await asyncpg.connect(clients.asyncpg_dsn(urls["postgresql"]))
            stack.push_async_callback(pg.close)
            data = users(10_000)
            for store in stores.values():  # the rows every lookup reads, in tgpersist's schema
                await store.account(READS).peers.save_many(data.peers)
            await pg.execute("ANALYZE")  # every contestant starts with planner statistics
            try:
                rows += await bulk_operations(stores, urls, pg, Path(tmp), storages, only_others)
                rows += await lookup_operations(data, stores, urls, pg, Path(tmp), storages, only_others)
            finally:
                for storage in storages:
                    await storage.close()
    if quick():
        for row in rows:
            row["note"] = (row["note"] + "; quick run").lstrip("; ")
    return rows
