"""How long after a network cut (or freeze) a lease holder reports `lost`, against the database's expiry.

`python -m benchmarks.lease_partition [--ttl 3 30] [--fault cut|pause]`: starts a throwaway PostgreSQL,
puts a `FaultProxy` in front of it for the holder, cuts the route right after a renewal succeeded, and
prints the seconds from the cut until `lost` turned True and until a second store's acquire succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import tgpersist
from tgpersist.testing.faults import FaultProxy
from tgpersist.testing.postgres import temporary_server


async def one_run(url: str, ttl: float, fault: str) -> tuple[float, float, float]:
    from sqlalchemy.engine.url import make_url

    target = make_url(url)
    with FaultProxy(str(target.host), int(target.port or 5432)) as proxy:
        holder = await tgpersist.open_store(proxy.url_for(url), upgrade=True, connect_timeout=2)
        rival = await tgpersist.open_store(url)
        lost_at: list[float] = []
        lease = await holder.account("bot").session.acquire(
            owner="a", ttl=ttl, on_lost=lambda _: lost_at.append(time.monotonic())
        )
        await lease.renew()
        cut = time.monotonic()
        proxy.cut() if fault == "cut" else proxy.pause()
        taken = await rival.account("bot").session.acquire(owner="b", ttl=ttl, wait=True, timeout=ttl * 3)
        acquired = time.monotonic()
        assert lease.lost and lost_at, "the old holder must know before the new one holds the lease"
        await taken.release()
        await rival.close()
        proxy.restore()
        await holder.close()
    return lost_at[0] - cut, acquired - cut, lease.margin


async def main(ttls: list[float], fault: str) -> None:
    with temporary_server() as url:
        for ttl in ttls:
            lost, acquired, margin = await one_run(url, ttl, fault)
            print(
                f"ttl {ttl:g}s, {fault}: lost after {lost:.2f}s, rival acquired after {acquired:.2f}s "
                f"(margin {margin:.2f}s, lost {acquired - lost:.2f}s before the takeover)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ttl", type=float, nargs="+", default=[3.0, 30.0])
    parser.add_argument("--fault", choices=("cut", "pause"), default="cut")
    options = parser.parse_args()
    asyncio.run(main(options.ttl, options.fault))
