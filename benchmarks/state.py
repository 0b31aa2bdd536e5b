"""Account state side by side: save and load of the update state, `remember` of dedup keys, and
start-up (opening an existing store or session file), for tgpersist and the clients' own sessions."""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from pyrogram.storage import SQLiteStorage
from telethon.sessions import SQLiteSession

import tgpersist
from benchmarks import clients
from benchmarks.harness import CLIENT, TGPERSIST, Contestant, compete, open_stores, per_call, quick, scaled
from tgpersist import UpdateState


def tgpersist_state(store: tgpersist.Store, backend: str, calls: int) -> list[Contestant]:
    updates = store.account("state").updates

    async def save(round_: int) -> list[float]:
        states = [
            UpdateState(pts=i, qts=i, date=i, seq=i) for i in range(round_ * calls, (round_ + 1) * calls)
        ]
        return await per_call([lambda s=s: updates.save_state(s) for s in states])

    async def load(round_: int) -> list[float]:
        return await per_call([updates.load_state for _ in range(calls)])

    return [
        Contestant(f"tgpersist {backend}", TGPERSIST, save, note="one write transaction per call"),
        Contestant(f"tgpersist {backend}", TGPERSIST, load, note="one read transaction per call"),
    ]


def tgpersist_remember(store: tgpersist.Store, backend: str, calls: int) -> Contestant:
    updates = store.account("dedup").updates

    async def run(round_: int) -> list[float]:
        keys = [f"msg:{round_}:{i}" for i in range(calls)]
        return await per_call([lambda k=k: updates.remember(k) for k in keys])

    return Contestant(f"tgpersist {backend}", TGPERSIST, run, note="new key each call (an INSERT)")


def tgpersist_open(url: str, backend: str) -> Contestant:
    async def run(round_: int) -> list[float]:
        start = time.perf_counter()
        store = await tgpersist.open_store(url)
        elapsed = time.perf_counter() - start
        await store.close()
        return [elapsed]

    return Contestant(f"tgpersist {backend}", TGPERSIST, run, note="engine, first connection, schema check")


def telethon_open(path: Path) -> Contestant:
    async def run(round_: int) -> None:
        SQLiteSession(str(path)).close()

    return Contestant("Telethon SQLiteSession()", CLIENT, run, note="existing file; includes close")


def kurigram_open(workdir: Path) -> Contestant:
    async def run(round_: int) -> None:
        storage = SQLiteStorage("kurigram-open", workdir=workdir)
        await storage.open()
        await storage.close()

    return Contestant(
        "Kurigram SQLiteStorage.open()", CLIENT, run, note="existing file (runs VACUUM); includes close"
    )


async def measure(urls: dict[str, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    rounds, calls = scaled(5, 2), scaled(200, 50)
    with tempfile.TemporaryDirectory(prefix="tgpersist-bench-") as tmp:
        workdir = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            stores = await open_stores(stack, urls)
            telethon = SQLiteSession(str(workdir / "telethon-state"))
            kurigram = SQLiteStorage("kurigram-state", workdir=workdir)
            await kurigram.open()
            try:
                mine = {b: tgpersist_state(s, b, calls) for b, s in stores.items()}
                theirs = [clients.telethon_state(telethon, calls), clients.kurigram_state(kurigram, calls)]
                for index, operation in enumerate(("save update state", "load update state")):
                    contestants = [pair[index] for pair in mine.values()] + [pair[index] for pair in theirs]
                    rows += await compete(operation, contestants, rounds, "call")
                remember = [tgpersist_remember(s, b, calls) for b, s in stores.items()]
                rows += await compete("remember (dedup key)", remember, rounds, "call")
            finally:
                telethon.close()
                await kurigram.close()
            opening = [tgpersist_open(u, b) for b, u in urls.items()]
            opening += [telethon_open(workdir / "telethon-state"), kurigram_open(workdir)]
            first = SQLiteStorage("kurigram-open", workdir=workdir)
            await first.open()  # create the file once: the benchmark opens an existing one
            await first.close()
            rows += await compete("open_store start-up", opening, scaled(10, 3), "open")
    if quick():
        for row in rows:
            row["note"] = (row["note"] + "; quick run").lstrip("; ")
    return rows
