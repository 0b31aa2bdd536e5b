"""Hosts whose clocks disagree: a worker process whose clock is an hour behind (libfaketime, a real
shift of the process's wall clock) and this one still agree on dedup keys, delays and queue leases,
because both read the database's clock.

Before the store read the server's clock, the late worker's 60 s dedup key and 30 s lease had expired
an hour ago for everyone else, and its 30 s delay had passed: each would have been handed out twice.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import tgpersist
from tests.test_server_clock import database_now, reads_database_clock
from tgpersist import DurableUpdate
from tgpersist.sql import server_clock
from tgpersist.testing.faults import FaultProxy

SKEW = timedelta(hours=-1)

_WORKER = """
import asyncio, json, sys
from datetime import UTC, datetime
import tgpersist
from tests.test_server_clock import database_now, reads_database_clock
from tgpersist import DurableUpdate

async def main(url):
    async with await tgpersist.open_store(url) as store:
        updates = store.account("bot").updates
        remembered = await updates.remember("k", ttl=60)
        await updates.enqueue(DurableUpdate(b"later", id="later"), delay=30)
        await updates.enqueue(DurableUpdate(b"now", id="now"))
        claimed = await updates.claim(10, lease=30, owner="late")
        print(json.dumps({
            "host_now": datetime.now(UTC).isoformat(),
            "remembered": remembered,
            "claimed": [(u.id, u.lease_expires_at.isoformat()) for u in claimed],
        }))

asyncio.run(main(sys.argv[1]))
"""


def _libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    assert found, "libfaketime is not installed (Debian package libfaketime; .ci/run installs it)"
    return found[0]


def _run_late_worker(url: str) -> dict[str, object]:
    env = dict(os.environ, LD_PRELOAD=_libfaketime(), FAKETIME="-1h", DONT_FAKE_MONOTONIC="1")
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, url], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def test_a_worker_an_hour_behind_hands_out_nothing_twice(pg_url: str) -> None:
    async with await tgpersist.open_store(pg_url) as store:
        await store.account("bot").updates.enqueue(DurableUpdate(b"x", id="warm-up"))
        await store.account("bot").updates.ack("warm-up")
    late = await asyncio.to_thread(_run_late_worker, pg_url)
    server_now = await database_now("postgresql", pg_url)
    host_now = datetime.fromisoformat(str(late["host_now"]))
    # The fault is real: the worker's own clock was an hour behind the server's.
    assert abs((server_now - host_now) - -SKEW) < timedelta(minutes=2)
    assert late["remembered"] is True
    claimed = late["claimed"]
    assert isinstance(claimed, list) and [item[0] for item in claimed] == ["now"]
    lease_end = datetime.fromisoformat(claimed[0][1])
    # The lease ends 30 s after the claim by the server's clock (not the worker's).
    assert timedelta(seconds=20) < lease_end - server_now <= timedelta(seconds=30)
    async with await tgpersist.open_store(pg_url) as store:
        updates = store.account("bot").updates
        assert await updates.remember("k") is False  # still remembered: its 60 s have not passed
        assert await updates.seen("k") is True
        assert await updates.claim(10, owner="on time") == []  # "now" is leased, "later" delayed
        counts = await updates.counts()
        assert (counts.available, counts.in_flight, counts.retry_wait) == (0, 1, 1)
        assert await updates.extend_lease("now", owner="late", lease=30) is True  # still the late one's


def test_libfaketime_shifts_the_wall_clock_not_the_monotonic_one() -> None:
    """What the test above relies on: the preloaded process's wall clock is an hour behind, its
    monotonic clock (asyncio's, and the store's between clock samples) is not shifted."""
    env = dict(os.environ, LD_PRELOAD=_libfaketime(), FAKETIME="-1h", DONT_FAKE_MONOTONIC="1")
    script = "import time, datetime; print(datetime.datetime.now(datetime.UTC).timestamp(), time.monotonic())"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    wall, monotonic = (float(v) for v in out.stdout.split())
    assert abs(datetime.now(UTC).timestamp() - wall - 3600) < 60
    assert abs(time.monotonic() - monotonic) < 60


async def test_a_sample_that_fails_keeps_the_last_one_and_is_tried_again(
    pg_url: str, proxy: FaultProxy
) -> None:
    async with await tgpersist.open_store(proxy.url_for(pg_url), connect_timeout=1) as store:
        clock = store._db.clock
        server_time, at = clock._anchor  # type: ignore[misc]
        clock._anchor = (server_time, at - server_clock.RESAMPLE - 1)  # due for another sample
        proxy.cut()
        started = time.monotonic()
        stale = clock.now()  # never waits for the database: the old sample, and a try in the background
        assert time.monotonic() - started < 0.5
        task = clock._resampling
        assert task is not None
        await asyncio.wait_for(asyncio.shield(task), 30)
        assert clock._anchor == (server_time, at - server_clock.RESAMPLE - 1)  # kept
        assert abs(clock.now() - stale) < timedelta(seconds=5)
        assert clock._resampling is task  # no new try before RETRY_PAUSE
        proxy.restore()
        clock._next_try = 0.0  # RETRY_PAUSE is over
        clock.now()
        assert clock._resampling is not task and clock._resampling is not None
        await asyncio.wait_for(asyncio.shield(clock._resampling), 30)
        assert await reads_database_clock(clock, "postgresql", pg_url)


async def test_a_sample_slower_than_max_round_trip_is_not_trusted(pg_url: str, proxy: FaultProxy) -> None:
    async with await tgpersist.open_store(proxy.url_for(pg_url)) as store:
        clock = store._db.clock
        server_time, at = clock._anchor  # type: ignore[misc]
        old = (server_time, at - server_clock.RESAMPLE - 1)
        clock._anchor = old
        proxy.pause()  # the sample's statements wait in the proxy
        clock.now()
        task = clock._resampling
        assert task is not None
        await asyncio.sleep(server_clock.MAX_ROUND_TRIP + 0.3)
        proxy.restore()
        await asyncio.wait_for(asyncio.shield(task), 30)
        assert clock._anchor == old  # its midpoint could be off by half of more than a second
        assert clock._next_try > time.monotonic()  # and the next try waits RETRY_PAUSE
