"""A lease holder process for the SIGSTOP test: `python -m tests.faults.holder URL TTL`.

Prints JSON lines: `acquired`, then `woke` from a SIGCONT handler (which runs before any task of the
event loop does, so `lost` there is what the lease says first thing after the freeze), then `lost`
from `on_lost`, and `write` with the outcome of a fenced write attempted after waking.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

import tgpersist
from tgpersist import UpdateState


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def main(url: str, ttl: float) -> None:
    async with await tgpersist.open_store(url) as store:
        acct = store.account("bot")
        woke = asyncio.Event()
        lease = await acct.session.acquire(
            owner="frozen", ttl=ttl, on_lost=lambda held: emit("lost", lost=held.lost)
        )

        def on_cont(signum: int, frame: object) -> None:
            emit("woke", lost=lease.lost)
            asyncio.get_running_loop().call_soon_threadsafe(woke.set)

        signal.signal(signal.SIGCONT, on_cont)
        emit("acquired", token=lease.token)
        await woke.wait()
        try:
            await acct.updates.save_state(UpdateState(pts=9, qts=9, date=9, seq=9))
            emit("write", outcome="stored")
        except tgpersist.LeaseLost:
            emit("write", outcome="LeaseLost")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
