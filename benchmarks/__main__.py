"""`python -m benchmarks [--quick] [--only peers,state,...] [--json PATH] [--markdown PATH]`

Creates a fresh SQLite file and a fresh PostgreSQL database (on a throwaway server, or on the server
`TGPERSIST_TEST_POSTGRES_URL` names), runs every benchmark module side by side, prints one table of
medians with ratios to the fastest raw driver and to each client, checks the issue's targets, and
writes everything as JSON (default `benchmarks/results.json`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine.url import make_url

from benchmarks.harness import CLIENT, QUICK_ENV, RAW, TGPERSIST, databases
from benchmarks.report import markdown, table
from tgpersist.testing.postgres import URL_ENV

MODULES = ("peers", "state", "queue", "memory", "group_commit", "pools", "pipeline", "churn", "sessions")
DEFAULT_JSON = Path(__file__).with_name("results.json")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


async def machine(urls: dict[str, str]) -> dict[str, Any]:
    conn = await asyncpg.connect(
        make_url(urls["postgresql"]).set(drivername="postgresql").render_as_string(False)
    )
    try:
        pg_version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version,
        "postgresql_settings": (
            "server from " + URL_ENV
            if os.environ.get(URL_ENV)
            else "throwaway server (tgpersist.testing.postgres): fsync=off, synchronous_commit=off"
        ),
    }


def shipped(rows: list[dict[str, Any]], client: str) -> dict[str, Any] | None:
    """The client's row as it ships (not the WAL variant)."""
    return next(
        (r for r in rows if r["implementation"].startswith(client) and "(WAL" not in r["implementation"]),
        None,
    )


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Per operation: each row's median over the fastest raw driver's, and over each client's."""
    operations: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if "median_s" in row:
            operations.setdefault(row["operation"], []).append(row)
    for group in operations.values():
        raws = [r for r in group if r["kind"] == RAW]
        best = min(raws, key=lambda r: r["median_s"]) if raws else None
        clients = {c: shipped(group, c) for c in ("Telethon", "Kurigram")}
        for row in group:
            if best is not None:
                row["vs_best_raw"] = row["median_s"] / best["median_s"]
                row["best_raw"] = best["implementation"]
            for name, client in clients.items():
                if client is not None and row["kind"] != CLIENT:
                    row[f"vs_{name.lower()}"] = row["median_s"] / client["median_s"]


def find(rows: list[dict[str, Any]], operation: str, implementation: str) -> dict[str, Any] | None:
    return next(
        (r for r in rows if r["operation"] == operation and r["implementation"] == implementation), None
    )


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured ratio and whether it is met (None: not measured)."""
    out: list[dict[str, Any]] = []

    def check(target: str, ours: dict[str, Any] | None, theirs: dict[str, Any] | None, limit: float) -> None:
        if ours is None or theirs is None:
            out.append({"target": target, "ratio": None, "met": None})
            return
        ratio = ours["median_s"] / theirs["median_s"]
        out.append({"target": target, "ratio": round(ratio, 3), "limit": limit, "met": ratio <= limit})

    for mode in ("new", "overwrite"):
        op = f"bulk upsert 10k peers ({mode})"
        ours = find(rows, op, "tgpersist sqlite")
        check(
            f"{op}: SQLite ≤ 1.5x raw sqlite3 executemany",
            ours,
            find(rows, op, "raw sqlite3 executemany"),
            1.5,
        )
        for client in ("Telethon", "Kurigram"):
            group = [r for r in rows if r["operation"] == op]
            check(f"{op}: SQLite faster than {client} (as shipped)", ours, shipped(group, client), 1.0)
            wal = next(
                (
                    r
                    for r in group
                    if r["implementation"].startswith(client) and "(WAL" in r["implementation"]
                ),
                None,
            )
            check(f"{op}: SQLite faster than {client} (WAL variant)", ours, wal, 1.0)
        pg = [find(rows, op, f"raw asyncpg {m}") for m in ("executemany", "unnest", "copy")]
        fastest = min((r for r in pg if r), key=lambda r: r["median_s"], default=None)
        check(
            f"{op}: PostgreSQL ≤ 1.3x fastest raw asyncpg",
            find(rows, op, "tgpersist postgresql"),
            fastest,
            1.3,
        )
    kurigram_by_id = find(rows, "get peer by id (hot)", "Kurigram get_peer_by_id")
    for by in ("id", "username"):
        for backend in ("sqlite", "postgresql"):
            ours = find(rows, f"get peer by {by} (hot)", f"tgpersist {backend}")
            check(
                f"hot get by {by} ({backend}) faster than Kurigram get_peer_by_id", ours, kurigram_by_id, 1.0
            )
    cold = find(rows, "get peer by id (cold)", "tgpersist sqlite")
    for raw in ("raw aiosqlite execute+fetch+close", "raw aiosqlite execute_fetchall"):
        check(f"cold get by id on SQLite ≤ 2x {raw}", cold, find(rows, "get peer by id (cold)", raw), 2.0)
    group_commit_targets(rows, check)
    out += contention_targets(rows)
    memory = next((r for r in rows if r.get("kind") == "memory"), None)
    if memory is not None:
        out.append(
            {
                "target": f"memory of {memory['peers']:,} cached peers bounded; cap respected",
                "bytes_per_peer": round(memory["bytes_per_peer"]),
                "met": memory["cap_respected"],
            }
        )
    return out


def group_commit_targets(rows: list[dict[str, Any]], check: Any) -> None:
    """Issue 18's targets: group commit against one raw transaction per call, hot state vs Telethon.
    Medians are seconds per call, so "≥ 8x the throughput" is a time ratio of at most 1/8."""
    for op in ("remember", "enqueue", "ack"):
        operation = f"{op}, 64 concurrent callers (SQLite)"
        check(
            f"{operation}: ≥ 8x the throughput of raw aiosqlite (time ratio ≤ 0.125)",
            find(rows, operation, "tgpersist sqlite, 64 callers"),
            find(rows, operation, "raw aiosqlite"),
            0.125,
        )
    pairs = {
        "remember, one caller (SQLite)": ("tgpersist sqlite", "≤ 1.5x raw aiosqlite", 1.5),
        "remember, 64 concurrent callers (PostgreSQL)": (
            "tgpersist postgresql, 64 callers",
            "≥ 8x the throughput of the fastest raw asyncpg (time ratio ≤ 0.125)",
            0.125,
        ),
    }
    for operation, (ours, wanted, limit) in pairs.items():
        raws = [r for r in rows if r["operation"] == operation and r["kind"] == RAW]
        fastest = min(raws, key=lambda r: r["median_s"], default=None)
        check(f"{operation}: {wanted}", find(rows, operation, ours), fastest, limit)
    operation = "load update state under the lease"
    for backend in ("sqlite", "postgresql"):
        check(
            f"{operation} ({backend}): ≤ 2x Telethon get_update_state",
            find(rows, operation, f"tgpersist {backend}"),
            find(rows, operation, "Telethon get_update_state"),
            2.0,
        )


def contention_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 18's targets of the pipeline, churn and sessions benchmarks (None: not measured)."""
    out: list[dict[str, Any]] = []
    ends = {r["kind"]: r for r in rows if r.get("group") == "pipeline" and "end to end" in r["operation"]}
    ours, theirs = ends.get(TGPERSIST), ends.get(RAW)
    if ours and theirs:
        ratio = ours["value"] / theirs["value"]
        out.append(
            {
                "target": "pipeline end to end at least as fast as PgQueuer",
                "ratio": round(ratio, 3),
                "limit": 1.0,
                "met": ratio >= 1.0,
                "higher_is_better": True,
                "values": [ours["value"], theirs["value"]],
                "unit": ours["unit"],
            }
        )
    churn = {(r["processes"], r["moving"]): r for r in rows if r.get("group") == "churn"}
    for processes in (4, 8):
        moving, staying = churn.get((processes, True)), churn.get((processes, False))
        if moving and staying:
            ratio = moving["value"] / staying["value"]
            out.append(
                {
                    "target": f"{processes} processes moving usernames: 0 deadlocks, >= 0.5x no-move",
                    "ratio": round(ratio, 3),
                    "limit": 0.5,
                    "deadlocks": moving["deadlocks"],
                    "met": ratio >= 0.5 and moving["deadlocks"] == 0,
                    "higher_is_better": True,
                }
            )
    for row in rows:
        if row.get("group") == "sessions":
            met = row["ratio"] <= 10 and row.get("statements") in (None, 1)
            out.append(
                {
                    "target": f"{row['operation']} ({row['implementation']}): <= 10x, one statement",
                    "ratio": round(row["ratio"], 3),
                    "limit": 10.0,
                    "statements": row.get("statements"),
                    "met": met,
                }
            )
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tgpersist-bench-") as tmp:
        async with databases(Path(tmp)) as urls:
            info = await machine(urls)
            for name in args.only:
                if importlib.util.find_spec(f"benchmarks.{name}") is None:
                    print(f"(benchmarks.{name} is not present: skipped)", file=sys.stderr)
                    continue
                module = importlib.import_module(f"benchmarks.{name}")
                print(f"running benchmarks.{name} ...", file=sys.stderr, flush=True)
                rows += await module.measure(urls)
    add_ratios(rows)
    return {
        "machine": info,
        "quick": args.quick,
        "durability": {
            "tgpersist sqlite / raw sqlite3 / raw aiosqlite": "WAL, synchronous=NORMAL, foreign_keys=ON",
            "Telethon SQLiteSession": "as shipped: journal_mode=DELETE, synchronous=FULL (SQLite default); "
            "WAL variant: WAL + synchronous=NORMAL",
            "Kurigram SQLiteStorage": "as shipped: journal_mode=DELETE, synchronous=FULL; WAL variant: "
            "use_wal=True (synchronous=FULL)",
        },
        "duration_s": round(time.time() - started, 1),
        "rows": rows,
        "targets": targets(rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="tgpersist side by side with Telethon, Kurigram and the raw drivers",
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds, calls and peers (a few minutes)")
    parser.add_argument("--only", default=",".join(MODULES), help=f"comma-separated subset of {MODULES}")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results")
    parser.add_argument("--markdown", type=Path, help="also write the table and targets as Markdown here")
    args = parser.parse_args()
    args.only = [m.strip() for m in args.only.split(",") if m.strip()]
    if args.quick:
        os.environ[QUICK_ENV] = "1"
    results = asyncio.run(run(args))
    print(table(results["rows"]))
    for row in results["rows"]:
        if row.get("kind") == "memory":
            print(
                f"\n{row['operation']}: {row['bytes_total'] / 1e6:.0f} MB "
                f"({row['bytes_per_peer']:.0f} bytes/peer: {row['bytes_per_peer_objects']:.0f} Peer objects, "
                f"{row['bytes_per_peer_index']:.0f} cache structures); {row['note']}"
            )
    print("\ntargets:")
    for target in results["targets"]:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
        ratio = (
            f" ({target['ratio']:.2f}x, limit {target['limit']}x)" if target.get("ratio") is not None else ""
        )
        print(f"  {verdict:>12}: {target['target']}{ratio}")
    args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")
    if args.markdown is not None:
        args.markdown.write_text(markdown(results))
    print(f"\n{results['machine']['cpus']} CPUs, {results['duration_s']} s; results written to {args.json}")


if __name__ == "__main__":
    main()
