"""PostgreSQL processes whose `save_many` batches move usernames between shared peers, against the
same batches with usernames that stay put: batches per second in all, and the deadlocks (SQLSTATE
40P01) that `Database.run` had to retry. Each case runs `ROUNDS` times, interleaved with the other
and each time after a VACUUM of the peer tables, and reports its median run, so that neither case
inherits more dead rows or more of the machine's drift than the other.
`python -m benchmarks.churn [--quick]` runs it alone.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import statistics
import time
import uuid
from multiprocessing.synchronize import Barrier
from typing import Any

import asyncpg
from sqlalchemy.engine.url import make_url

import tgpersist
from benchmarks.harness import TGPERSIST, run_alone, scaled
from tgpersist import Peer, PeerType
from tgpersist.sql import errors

SPAWN = multiprocessing.get_context("spawn")
#: Runs of each case, interleaved (staying, moving, staying, ...); the median run is reported.
ROUNDS = 3
PEERS = 400
BATCH = 100


def _batch(rng: random.Random, moving: bool, round_: int) -> list[Peer]:
    ids = rng.sample(range(1, PEERS + 1), BATCH)
    names = rng.sample(range(PEERS), BATCH) if moving else ids
    return [
        Peer(i, PeerType.USER, access_hash=round_, username=f"n{name}", first_name=f"r{round_}")
        for i, name in zip(ids, names, strict=True)
    ]


async def _saver(url: str, account: str, index: int, moving: bool, seconds: float, barrier: Barrier) -> Any:
    rng = random.Random(index)
    async with await tgpersist.open_store(url) as store:
        peers = store.account(account).peers
        await asyncio.to_thread(barrier.wait, 120)
        deadline, done = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            await peers.save_many(_batch(rng, moving, done))
            done += 1
        return done, errors.RETRIED["40P01"]


def _child(
    url: str, account: str, index: int, moving: bool, seconds: float, barrier: Barrier, out: Any
) -> None:
    out.put(asyncio.run(_saver(url, account, index, moving, seconds, barrier)))


async def _once(url: str, processes: int, moving: bool, seconds: float) -> tuple[float, int]:
    account = f"churn-{uuid.uuid4().hex[:8]}"
    async with await tgpersist.open_store(url) as store:  # every peer exists, each with its own name
        await store.account(account).peers.save_many(
            Peer(i, PeerType.USER, access_hash=0, username=f"n{i}") for i in range(1, PEERS + 1)
        )
    barrier, out = SPAWN.Barrier(processes), SPAWN.Queue()
    children = [
        SPAWN.Process(target=_child, args=(url, account, i, moving, seconds, barrier, out))
        for i in range(processes)
    ]
    for child in children:
        child.start()
    results = [await asyncio.to_thread(out.get, True, seconds + 300) for _ in children]
    for child in children:
        await asyncio.to_thread(child.join, 60)
    return sum(r[0] for r in results) / seconds, sum(r[1] for r in results)


async def _vacuum(url: str) -> None:
    """VACUUM ANALYZE the peer tables, so that every case starts from the same state: without it each
    case inherits the dead row versions of the cases before it (moving usernames leaves many)."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        for table in ("tgpersist_peers", "tgpersist_usernames"):
            await conn.execute(f"VACUUM ANALYZE {table}")
    finally:
        await conn.close()


async def measure(urls: dict[str, str]) -> list[dict[str, Any]]:
    url = urls["postgresql"]
    seconds = float(scaled(8, 3))
    await (await tgpersist.open_store(url)).close()
    rows = []
    for processes in (4, 8):
        runs: dict[bool, list[tuple[float, int]]] = {False: [], True: []}
        for _ in range(ROUNDS):  # interleaved: drift on the machine touches both cases alike
            for moving in (False, True):
                await _vacuum(url)
                runs[moving].append(await _once(url, processes, moving, seconds))
        for moving, found in runs.items():
            rate = statistics.median(r for r, _ in found)
            deadlocks = sum(d for _, d in found)
            rows.append(
                {
                    "group": "churn",
                    "operation": f"save_many({BATCH}) from {processes} PostgreSQL processes",
                    "implementation": f"tgpersist postgresql, usernames {'moving' if moving else 'staying'}",
                    "kind": TGPERSIST,
                    "processes": processes,
                    "moving": moving,
                    "value": rate,
                    "unit": "batches/s",
                    "median_s": 1 / rate,
                    "samples": len(found),
                    "deadlocks": deadlocks,
                    "note": f"{deadlocks} deadlocks retried in {ROUNDS} runs of {seconds:.0f} s (median run)",
                }
            )
    return rows


def main() -> None:
    run_alone(
        "churn",
        __doc__ or "",
        measure,
        lambda row: f"| {row['implementation']} | {row['value']:,.1f} batches/s | {row['note']} |",
        "3 s per run instead of 8 s",
    )


if __name__ == "__main__":
    main()
