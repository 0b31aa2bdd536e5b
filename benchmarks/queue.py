"""Durable queue throughput: updates per second enqueued, and drained by 1 and by 4 worker processes.

Each worker is a separate OS process (spawned) with its own store on the same database, as a bot
deployment runs them. A drain counts from the moment every worker is ready (a barrier) until the last
one finds the queue empty. `python -m benchmarks.queue [--quick]` runs it alone; `measure(urls)` is
what `python -m benchmarks` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import tgpersist
from benchmarks.harness import QUICK_ENV, TGPERSIST, databases, scaled
from tgpersist import DurableUpdate

SPAWN = multiprocessing.get_context("spawn")
PAYLOAD = b"u" * 256  # about the size of a serialised small Telegram update
BATCH = 100


# -- one worker process ---------------------------------------------------------------------------------
async def _drain(
    url: str, account: str, owner: str, batched_ack: bool, barrier: Barrier
) -> tuple[float, float, int]:
    async with await tgpersist.open_store(url) as store:
        queue = store.account(account).updates
        await asyncio.to_thread(barrier.wait, 120)
        start, handled = time.time(), 0
        while claimed := await queue.claim(BATCH, owner=owner, lease=300):
            if batched_ack:
                handled += len(await queue.ack_many(u.id for u in claimed))
            else:
                for update in claimed:
                    handled += await queue.ack(update.id)
        return start, time.time(), handled


def _worker(
    url: str, account: str, owner: str, batched_ack: bool, barrier: Barrier, results: Queue[Any]
) -> None:
    try:
        results.put(asyncio.run(_drain(url, account, owner, batched_ack, barrier)))
    except BaseException as error:
        results.put(error)
        raise


# -- measurements ---------------------------------------------------------------------------------------
async def _fill(url: str, account: str, count: int) -> float:
    """Enqueue `count` updates in batches of BATCH; returns the seconds it took."""
    async with await tgpersist.open_store(url) as store:
        queue = store.account(account).updates
        start = time.perf_counter()
        for first in range(0, count, BATCH):
            ids = range(first, min(count, first + BATCH))
            await queue.enqueue_many(DurableUpdate(PAYLOAD, id=f"{account}:{i}") for i in ids)
        return time.perf_counter() - start


async def _enqueue_one_by_one(url: str, account: str, count: int) -> float:
    async with await tgpersist.open_store(url) as store:
        queue = store.account(account).updates
        start = time.perf_counter()
        for i in range(count):
            await queue.enqueue(DurableUpdate(PAYLOAD, id=f"{account}:{i}"))
        elapsed = time.perf_counter() - start
        await queue.ack_many(f"{account}:{i}" for i in range(count))
        return elapsed


async def _drain_with(url: str, account: str, workers: int, batched_ack: bool, count: int) -> float:
    """Drain `count` queued updates with `workers` processes; returns updates per second."""
    barrier, results = SPAWN.Barrier(workers), SPAWN.Queue()
    processes = [
        SPAWN.Process(target=_worker, args=(url, account, f"w{i}", batched_ack, barrier, results))
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    outcomes = [await asyncio.to_thread(results.get, True, 600) for _ in processes]
    for process in processes:
        await asyncio.to_thread(process.join, 60)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if errors:
        raise errors[0]
    handled = sum(o[2] for o in outcomes)
    if handled != count:
        raise RuntimeError(f"drained {handled} updates, expected {count}")
    elapsed: float = max(o[1] for o in outcomes) - min(o[0] for o in outcomes)
    return count / elapsed


def _row(backend: str, operation: str, value: float, n: int, note: str) -> dict[str, Any]:
    return {
        "group": "queue",
        "operation": operation,
        "impl": f"tgpersist-{backend}",
        "value": value,
        "unit": "updates/s",
        "n": n,
        # The same figure as the side-by-side tables of `python -m benchmarks` show it: time per update.
        "implementation": f"tgpersist {backend}",
        "kind": TGPERSIST,
        "median_s": 1 / value,
        "samples": 1,
        "note": note,
    }


async def measure(urls: dict[str, str]) -> list[dict[str, Any]]:
    """Queue throughput on each database in `urls` ("sqlite", "postgresql": fresh database URLs)."""
    count = scaled(20_000, 4_000)
    singles = scaled(2_000, 500)
    rows: list[dict[str, Any]] = []
    for backend, url in urls.items():
        run = uuid.uuid4().hex[:8]
        await (await tgpersist.open_store(url)).close()  # migrate before the workers open it
        elapsed = await _enqueue_one_by_one(url, f"q1-{run}", singles)
        rows.append(
            _row(backend, "enqueue, one per call", singles / elapsed, singles, "one transaction each")
        )
        for workers in (1, 4):
            for batched_ack in (False, True):
                account = f"q{workers}{'b' if batched_ack else 'a'}-{run}"
                elapsed = await _fill(url, account, count)
                if workers == 1 and not batched_ack:
                    rows.append(
                        _row(
                            backend,
                            f"enqueue_many({BATCH})",
                            count / elapsed,
                            count,
                            "one transaction a batch",
                        )
                    )
                ack = f"ack_many({BATCH})" if batched_ack else "ack per update"
                rate = await _drain_with(url, account, workers, batched_ack, count)
                label = (
                    f"drain: claim({BATCH}) + {ack}, {workers} worker process{'es' if workers > 1 else ''}"
                )
                note = f"{workers} spawned process{'es' if workers > 1 else ''}, own store each"
                rows.append(_row(backend, label, rate, count, note))
    return rows


# -- running alone --------------------------------------------------------------------------------------
async def _main() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="tgpersist-bench-queue-") as tmp:
        async with databases(Path(tmp), "queue") as urls:
            return await measure(urls)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.queue", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4,000 updates instead of 20,000")
    if parser.parse_args().quick:
        os.environ[QUICK_ENV] = "1"
    rows = asyncio.run(_main())
    print(f"| operation | implementation | updates/s | n |  ({os.cpu_count()} CPUs)", file=sys.stdout)
    print("|---|---|---:|---:|")
    for row in rows:
        print(f"| {row['operation']} | {row['impl']} | {row['value']:,.0f} | {row['n']:,} |")


if __name__ == "__main__":
    main()
