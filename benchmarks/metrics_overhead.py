"""`python -m benchmarks.metrics_overhead`: what the instrumentation costs on the hottest path.

A hot `peers.get` (a peer-cache hit) is the cheapest call tgpersist has; its only instrumentation is
one integer increment (hits are reported by an observable counter, never recorded per call). This
measures the hit, the increment alone, and the hit and a miss (a database read, timed by the
`tgpersist.operation.duration` histogram) with and without an SDK `MeterProvider`; ratios, medians.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import tgpersist
from tgpersist import Peer, PeerType, metrics

ROUNDS, CALLS, PEERS = 15, 20_000, 100


async def hot_gets(peers: object, ids: list[int]) -> float:
    """Seconds per `get` of cached peers, over CALLS calls."""
    get = peers.get  # type: ignore[attr-defined]
    started = time.perf_counter()
    for i in range(CALLS):
        await get(ids[i % len(ids)])
    return (time.perf_counter() - started) / CALLS


async def misses(peers: object, count: int) -> float:
    get = peers.get  # type: ignore[attr-defined]
    started = time.perf_counter()
    for i in range(count):
        await get(10_000_000 + i)
    return (time.perf_counter() - started) / count


def increment() -> float:
    """Seconds per `lookups.hits += 1` (the loop's own cost subtracted)."""
    lookups = metrics.peer_cache_lookups
    started = time.perf_counter()
    for _ in range(CALLS):
        lookups.hits += 1
    counted = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(CALLS):
        pass
    return max(0.0, counted - (time.perf_counter() - started)) / CALLS


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        async with await tgpersist.open_store(url) as store:
            acct = store.account("bench")
            await acct.peers.save_many([Peer(i + 1, PeerType.USER, access_hash=i) for i in range(PEERS)])
            ids = list(range(1, PEERS + 1))
            figures: dict[str, list[float]] = {k: [] for k in ("hit", "hit_sdk", "inc", "miss", "miss_sdk")}
            sdk = MeterProvider(metric_readers=[InMemoryMetricReader()])
            for round_ in range(ROUNDS):
                for with_sdk in (round_ % 2 == 0, round_ % 2 == 1):  # alternate which goes first
                    metrics.configure(sdk if with_sdk else None)
                    suffix = "_sdk" if with_sdk else ""
                    figures["hit" + suffix].append(await hot_gets(acct.peers, ids))
                    figures["miss" + suffix].append(await misses(acct.peers, 200))
                figures["inc"].append(increment())
            metrics.configure()
    med = {k: statistics.median(v) for k, v in figures.items()}
    hit, miss = med["hit"], med["miss"]
    print(f"peers.get hot hit:            {hit * 1e9:8.0f} ns")
    print(f"  its hit counter increment:  {med['inc'] * 1e9:8.0f} ns ({med['inc'] / hit:.1%} of a hit)")
    print(f"  hit with an SDK provider:   {med['hit_sdk'] * 1e9:8.0f} ns ({med['hit_sdk'] / hit:.2f}x)")
    print(f"peers.get miss (one read):    {miss * 1e6:8.1f} us")
    print(f"  miss with an SDK provider:  {med['miss_sdk'] * 1e6:8.1f} us ({med['miss_sdk'] / miss:.2f}x)")


if __name__ == "__main__":
    asyncio.run(main())
