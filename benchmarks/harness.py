"""Interleaved timing: every contestant of an operation runs once per round, in rotating order, so that
a change in machine load hits all of them alike; results are medians over rounds (or over calls)."""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine.url import make_url

import tgpersist
from tgpersist.testing.postgres import server_url

QUICK_ENV = "TGPERSIST_BENCH_QUICK"

#: What a row's `kind` says about its implementation.
TGPERSIST, RAW, CLIENT = "tgpersist", "raw", "client"


def quick() -> bool:
    """Whether `python -m benchmarks --quick` asked for a short run."""
    return os.environ.get(QUICK_ENV) == "1"


def scaled(full: int, short: int) -> int:
    return short if quick() else full


Timed = Callable[[int], Awaitable[Sequence[float] | None]]


@dataclass
class Contestant:
    """One implementation of an operation. `run(round)` is timed whole, unless it returns its own
    per-call durations; `setup(round)` runs before it, untimed."""

    implementation: str
    kind: str
    run: Timed
    setup: Callable[[int], Awaitable[None]] | None = None
    note: str = ""
    samples: list[float] = field(default_factory=list)


async def compete(
    operation: str, contestants: Sequence[Contestant], rounds: int, unit: str
) -> list[dict[str, Any]]:
    """Run every contestant `rounds` times, interleaved; one result row per contestant."""
    live = list(contestants)
    for r in range(rounds):
        shift = r % len(live)
        for contestant in live[shift:] + live[:shift]:
            if contestant.setup is not None:
                await contestant.setup(r)
            gc.collect()
            start = time.perf_counter()
            calls = await contestant.run(r)
            elapsed = time.perf_counter() - start
            contestant.samples.extend(calls if calls is not None else [elapsed])
    return [
        {
            "operation": operation,
            "implementation": c.implementation,
            "kind": c.kind,
            "median_s": statistics.median(c.samples),
            "samples": len(c.samples),
            "unit": unit,
            "note": c.note,
        }
        for c in live
    ]


async def per_call(calls: Sequence[Callable[[], Awaitable[Any]]]) -> list[float]:
    """Time each awaited call on its own."""
    clock = time.perf_counter
    out = []
    for call in calls:
        start = clock()
        await call()
        out.append(clock() - start)
    return out


def per_call_sync(calls: Sequence[Callable[[], Any]]) -> list[float]:
    clock = time.perf_counter
    out = []
    for call in calls:
        start = clock()
        call()
        out.append(clock() - start)
    return out


async def open_stores(stack: contextlib.AsyncExitStack, urls: dict[str, str]) -> dict[str, tgpersist.Store]:
    """A store on each backend's database, closed with `stack`."""
    return {b: await stack.enter_async_context(await tgpersist.open_store(u)) for b, u in urls.items()}


@contextlib.asynccontextmanager
async def databases(workdir: Path, label: str = "bench") -> AsyncIterator[dict[str, str]]:
    """A fresh SQLite file and a fresh database on a throwaway (or configured) PostgreSQL server."""
    with server_url() as server:
        admin = make_url(server)
        name = f"{label}_{uuid.uuid4().hex[:12]}"
        dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        try:
            yield {
                "sqlite": f"sqlite+aiosqlite:///{workdir / (label + '.db')}",
                "postgresql": admin.set(database=name).render_as_string(hide_password=False),
            }
        finally:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()


def run_alone(
    name: str,
    doc: str,
    measure: Callable[[dict[str, str]], Awaitable[list[dict[str, Any]]]],
    show: Callable[[dict[str, Any]], str],
    quick_help: str,
) -> None:
    """`python -m benchmarks.NAME [--quick]`: one module's `measure` on fresh databases, a line a row."""
    import argparse
    import asyncio
    import tempfile

    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    if parser.parse_args().quick:
        os.environ[QUICK_ENV] = "1"

    async def measured() -> list[dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix=f"tgpersist-bench-{name}-") as tmp:
            async with databases(Path(tmp), name) as urls:
                return await measure(urls)

    for row in asyncio.run(measured()):
        print(show(row))
