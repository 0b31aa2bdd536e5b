"""Many accounts: `store.list_sessions()` and the CLI's `sessions list` with 2,000 accounts against 20,
on SQLite and PostgreSQL: statements per listing (counted on the engine) and time (the CLI as a
subprocess, so its start-up is in both figures alike). `python -m benchmarks.sessions [--quick]`.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event

import tgpersist
from benchmarks.harness import TGPERSIST, run_alone, scaled
from tgpersist import Session

COUNTS = (20, 2000)


async def _fill(url: str, prefix: str, count: int) -> None:
    async with await tgpersist.open_store(url, upgrade=True) as store:
        for i in range(count):
            await store.account(f"{prefix}{i:05d}").session.save(Session(f"{prefix}{i:05d}", dc_id=2))


async def _api(url: str, rounds: int) -> tuple[int, int, float]:
    """(statements per listing, sessions listed, median seconds) of `list_sessions`."""
    async with await tgpersist.open_store(url) as store:
        statements = 0

        def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            nonlocal statements
            if not statement.lstrip().upper().startswith("BEGIN"):  # SQLite's BEGIN hook is no query
                statements += 1

        event.listen(store.engine.sync_engine, "before_cursor_execute", count)
        await store.list_sessions()  # warm
        times = []
        for _ in range(rounds):
            statements = 0
            start = time.perf_counter()
            names = await store.list_sessions()
            times.append(time.perf_counter() - start)
        return statements, len(names), statistics.median(times)


def _cli(url: str, rounds: int) -> float:
    tool = str(Path(sys.executable).with_name("tgpersist"))
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([tool, "sessions", "list", "--url", url], check=True, capture_output=True, timeout=600)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def measure(urls: dict[str, str]) -> list[dict[str, Any]]:
    rounds = scaled(5, 2)
    rows: list[dict[str, Any]] = []
    for backend, base in urls.items():
        measured: dict[int, tuple[int, int, float, float]] = {}
        for count in COUNTS:
            url = base
            if backend == "sqlite":
                url = base.replace(".db", f"-sessions{count}.db")
            else:  # a database of its own per count: list_sessions lists every account
                url = await _database(base, f"s{count}", create=True)
            try:
                await _fill(url, "acct", count)
                statements, listed, api = await _api(url, rounds)
                measured[count] = (statements, listed, api, await asyncio.to_thread(_cli, url, rounds))
            finally:
                if backend == "postgresql":
                    await _database(url, "", create=False)
        small, large = measured[COUNTS[0]], measured[COUNTS[1]]
        for label, index in (("store.list_sessions()", 2), ("tgpersist sessions list (subprocess)", 3)):
            rows.append(
                {
                    "group": "sessions",
                    "operation": f"{label}: {COUNTS[1]:,} accounts vs {COUNTS[0]}",
                    "implementation": f"tgpersist {backend}",
                    "kind": TGPERSIST,
                    "median_s": large[index],
                    "small_s": small[index],
                    "ratio": large[index] / small[index],
                    "statements": large[0] if index == 2 else None,
                    "samples": rounds,
                    "note": f"{large[index] / small[index]:.2f}x the time of {COUNTS[0]}"
                    + (f"; {large[0]} statement(s) for {large[1]:,} sessions" if index == 2 else ""),
                }
            )
    return rows


async def _database(url: str, label: str, *, create: bool) -> str:
    """Create a database next to the one of `url` (its URL), or drop the one of `url`."""
    import asyncpg
    from sqlalchemy.engine.url import make_url

    parsed = make_url(url)
    name = f"{parsed.database}_{label}_{uuid.uuid4().hex[:6]}" if create else parsed.database
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        sql = f'CREATE DATABASE "{name}"' if create else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        await conn.execute(sql)
    finally:
        await conn.close()
    return parsed.set(database=name).render_as_string(hide_password=False)


def main() -> None:
    run_alone(
        "sessions",
        __doc__ or "",
        measure,
        lambda row: f"| {row['operation']} | {row['implementation']} | {row['note']} |",
        "2 rounds instead of 5",
    )


if __name__ == "__main__":
    main()
