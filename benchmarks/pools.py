"""Pool sizing: 64 concurrent callers of `remember` on PostgreSQL, per pool setting: calls per second
and how many connections the pool opened (an overflow connection is closed after each use, so a
pool too small for the callers opens new ones all the time). `python -m benchmarks.pools [--quick]`
runs it alone; `measure(urls)` is what `python -m benchmarks` calls.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import tgpersist
from benchmarks.harness import TGPERSIST, run_alone, scaled
from tgpersist.sql import engines
from tgpersist.testing.pools import PoolWatch

CALLERS = 64
#: (label, engine options): SQLAlchemy's own default, tgpersist's default, and larger pools.
SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("SQLAlchemy default (pool_size=5, max_overflow=10)", {"pool_size": 5, "max_overflow": 10}),
    (
        f"tgpersist default (pool_size={engines.POOL_SIZE}, max_overflow={engines.MAX_OVERFLOW})",
        {},
    ),
    ("pool_size=20, max_overflow=0", {"pool_size": 20, "max_overflow": 0}),
]


async def _run(url: str, options: dict[str, Any], calls: int) -> tuple[float, int, int]:
    """(calls per second, connections opened, most connections checked out at once)."""
    store = await tgpersist.open_store(url, **options)
    watch = PoolWatch(store.engine)
    try:
        account = store.account(f"pool-{uuid.uuid4().hex[:8]}")
        await account.updates.remember("warm-up")
        per_caller = calls // CALLERS

        async def caller(index: int) -> None:
            for i in range(per_caller):
                await account.updates.remember(f"k{index}:{i}")

        watch.reset()
        start = time.perf_counter()
        await asyncio.gather(*(caller(c) for c in range(CALLERS)))
        elapsed = time.perf_counter() - start
        return per_caller * CALLERS / elapsed, watch.opened, watch.peak
    finally:
        await store.close()


async def measure(urls: dict[str, str]) -> list[dict[str, Any]]:
    calls = scaled(5_000, 2_000)
    rows: list[dict[str, Any]] = []
    for label, options in SETTINGS:
        rate, opened, peak = await _run(urls["postgresql"], options, calls)
        rows.append(
            {
                "group": "pools",
                "operation": f"{CALLERS} concurrent callers of remember (PostgreSQL)",
                "implementation": f"tgpersist postgresql, {label}",
                "kind": TGPERSIST,
                "median_s": 1 / rate,
                "value": rate,
                "unit": "calls/s",
                "samples": 1,
                "n": calls,
                "connections_opened": opened,
                "peak_checked_out": peak,
                "note": f"{opened} connections opened during {calls:,} calls; at most {peak} in use",
            }
        )
    return rows


def main() -> None:
    run_alone(
        "pools",
        __doc__ or "",
        measure,
        lambda row: f"| {row['implementation']} | {row['value']:,.0f} calls/s | {row['note']} |",
        "2,000 calls instead of 5,000",
    )


if __name__ == "__main__":
    main()
