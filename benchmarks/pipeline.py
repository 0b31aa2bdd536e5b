"""The update pipeline on PostgreSQL, side by side with PgQueuer on the same server: updates per second
end to end.

tgpersist: 1 producer process (64 coroutines, `remember` + `enqueue` per update) and 4 worker
processes (`claim(100, wait=...)` + `ack_many`). PgQueuer: 1 producer process (64 coroutines,
`enqueue` per update on an asyncpg pool of the same size as tgpersist's, no dedup) and 4
`QueueManager` worker processes (batch size 100; their acks are buffered and written in batches).
End to end runs from the producers' start (a barrier) until the last update is handled; an update
counts for tgpersist once acked, for PgQueuer once its handler ran. The producer's own rate is
measured during the same run. `python -m benchmarks.pipeline [--quick]` runs it alone.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
import uuid
from datetime import timedelta
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier, Event
from typing import Any

import asyncpg
from sqlalchemy.engine.url import make_url

import tgpersist
from benchmarks.harness import RAW, TGPERSIST, quick, run_alone, scaled
from tgpersist import DurableUpdate
from tgpersist.sql import engines

SPAWN = multiprocessing.get_context("spawn")
PAYLOAD = b"u" * 256
PRODUCERS = 64
WORKERS = 4
BATCH = 100


class Run:
    """What the processes of one run share: a start barrier, the handled count, when it was done."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.barrier: Barrier = SPAWN.Barrier(WORKERS + 2)  # workers, the producer, the parent
        self.handled: Synchronized[int] = SPAWN.Value("q", 0)
        self.finished: Synchronized[float] = SPAWN.Value("d", 0.0)
        self.produced: Synchronized[float] = SPAWN.Value("d", 0.0)
        self.started: Synchronized[float] = SPAWN.Value("d", 0.0)
        self.done: Event = SPAWN.Event()

    def count(self, n: int) -> None:
        with self.handled.get_lock():
            self.handled.value += n
            if self.handled.value >= self.total and not self.done.is_set():
                self.finished.value = time.time()
                self.done.set()


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# -- tgpersist -------------------------------------------------------------------------------------------
async def _tg_produce(url: str, account: str, run: Run) -> None:
    async with await tgpersist.open_store(url) as store:
        updates = store.account(account).updates
        await asyncio.to_thread(run.barrier.wait, 120)
        run.started.value = time.time()

        async def producer(first: int) -> None:
            for i in range(first, run.total, PRODUCERS):
                key = f"upd:{i}"
                if await updates.remember(key):
                    await updates.enqueue(DurableUpdate(PAYLOAD, id=key))

        await asyncio.gather(*(producer(p) for p in range(PRODUCERS)))
        run.produced.value = time.time()


async def _tg_work(url: str, account: str, index: int, run: Run) -> None:
    async with await tgpersist.open_store(url) as store:
        updates = store.account(account).updates
        await asyncio.to_thread(run.barrier.wait, 120)
        while not run.done.is_set():
            claimed = await updates.claim(BATCH, owner=f"w{index}", lease=300, wait=0.5)
            if claimed:
                run.count(len(await updates.ack_many(u.id for u in claimed)))


# -- PgQueuer --------------------------------------------------------------------------------------------
async def _pgq_produce(url: str, run: Run) -> None:
    from pgqueuer import AsyncpgPoolDriver, Queries

    async with asyncpg.create_pool(_dsn(url), min_size=engines.POOL_SIZE, max_size=engines.POOL_SIZE) as pool:
        queries = Queries(AsyncpgPoolDriver(pool))
        await asyncio.to_thread(run.barrier.wait, 120)
        run.started.value = time.time()

        async def producer(first: int) -> None:
            for _ in range(first, run.total, PRODUCERS):
                await queries.enqueue("update", PAYLOAD)

        await asyncio.gather(*(producer(p) for p in range(PRODUCERS)))
        run.produced.value = time.time()


async def _pgq_work(url: str, index: int, run: Run) -> None:
    from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager

    conn = await asyncpg.connect(_dsn(url))
    try:
        manager = QueueManager(Queries(AsyncpgDriver(conn)))

        @manager.entrypoint("update")
        async def handle(job: Job) -> None:
            run.count(1)

        async def stop_when_done() -> None:
            await asyncio.to_thread(run.done.wait, 600)
            manager.shutdown.set()

        await asyncio.to_thread(run.barrier.wait, 120)
        stopper = asyncio.create_task(stop_when_done())
        await manager.run(dequeue_timeout=timedelta(seconds=0.5), batch_size=BATCH)
        await stopper
    finally:
        await conn.close()


async def _install_pgqueuer(url: str) -> None:
    from pgqueuer import AsyncpgDriver, Queries

    conn = await asyncpg.connect(_dsn(url))
    try:
        queries = Queries(AsyncpgDriver(conn))
        if not await queries.schema_is_installed():
            await queries.install()
    finally:
        await conn.close()


# -- running ---------------------------------------------------------------------------------------------
def _child(kind: str, role: str, url: str, account: str, index: int, run: Run) -> None:
    if kind == "tgpersist":
        body = _tg_produce(url, account, run) if role == "producer" else _tg_work(url, account, index, run)
    else:
        body = _pgq_produce(url, run) if role == "producer" else _pgq_work(url, index, run)
    asyncio.run(body)


async def _once(kind: str, url: str, total: int) -> tuple[float, float]:
    """One run; (end-to-end updates/s, producer updates/s)."""
    run = Run(total)
    account = f"pipe-{uuid.uuid4().hex[:8]}"
    processes = [SPAWN.Process(target=_child, args=(kind, "producer", url, account, 0, run))]
    processes += [
        SPAWN.Process(target=_child, args=(kind, "worker", url, account, i, run)) for i in range(WORKERS)
    ]
    for process in processes:
        process.start()
    await asyncio.to_thread(run.barrier.wait, 180)
    deadline = time.monotonic() + 900
    finished = False
    while not finished and time.monotonic() < deadline:
        finished = await asyncio.to_thread(run.done.wait, 1.0)
        if not finished and any(p.exitcode not in (None, 0) for p in processes):
            break  # a process died: the others would wait for it forever
    if not finished:
        run.done.set()
    for process in processes:
        await asyncio.to_thread(process.join, 120)
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if not finished or failed:
        raise RuntimeError(f"{kind} pipeline did not finish (exit codes {failed})")
    return total / (run.finished.value - run.started.value), total / (run.produced.value - run.started.value)


def _row(operation: str, implementation: str, kind: str, rates: list[float], note: str) -> dict[str, Any]:
    rate = statistics.median(rates)
    return {
        "group": "pipeline",
        "operation": operation,
        "implementation": implementation,
        "kind": kind,
        "value": rate,
        "unit": "updates/s",
        "median_s": 1 / rate,
        "samples": len(rates),
        "note": note,
    }


async def measure(urls: dict[str, str]) -> list[dict[str, Any]]:
    url = urls["postgresql"]
    total = scaled(10_000, 3_000)
    rounds = 1 if quick() else 3
    await (await tgpersist.open_store(url)).close()  # migrate before the processes open it
    await _install_pgqueuer(url)
    results: dict[str, list[tuple[float, float]]] = {"tgpersist": [], "PgQueuer": []}
    for r in range(rounds):
        for kind in ("tgpersist", "PgQueuer") if r % 2 == 0 else ("PgQueuer", "tgpersist"):
            results[kind].append(await _once(kind, url, total))
    rows = []
    for kind, label, note in (
        ("tgpersist", "tgpersist postgresql", "remember + enqueue; claim(100, wait) + ack_many"),
        ("PgQueuer", f"PgQueuer {_version()}", "enqueue (no dedup); QueueManager batch 100"),
    ):
        family = TGPERSIST if kind == "tgpersist" else RAW
        ends, produced = [e for e, _ in results[kind]], [p for _, p in results[kind]]
        operation = f"pipeline: 1 producer x {PRODUCERS} coroutines, {WORKERS} workers, {total:,} updates"
        rows.append(_row(f"{operation} (end to end)", label, family, ends, note))
        rows.append(_row(f"{operation} (producer)", label, family, produced, note))
    return rows


def _version() -> str:
    from importlib.metadata import version

    return version("pgqueuer")


def main() -> None:
    run_alone(
        "pipeline",
        __doc__ or "",
        measure,
        lambda row: f"| {row['operation']} | {row['implementation']} | {row['value']:,.0f} updates/s |",
        "3,000 updates, one round",
    )


if __name__ == "__main__":
    main()
