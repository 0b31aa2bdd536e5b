"""Session leases across real processes: busy while held, takeover after SIGKILL, fencing, renewal under load.

The test process is one client; each holder is a separate Python process running this file as a script
(see `holder_main`), with its own store on the same database URL. Holders report events as JSON lines.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import tgpersist
from tgpersist import (
    ChannelState,
    DcAuth,
    LeaseInfo,
    LeaseLost,
    Peer,
    PeerType,
    Session,
    SessionBusy,
    UpdateState,
)

NAME = "bot"
KEY = bytes(range(256))
TTL = 1.5
HEARTBEAT = 0.5


# -- the holder process ---------------------------------------------------------------------------
def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def busy_work(acct: tgpersist.Account, seconds: float, workers: int = 8) -> int:
    """Keep the event loop and the database busy: concurrent writes, dedup checks, CPU slices."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    done = 0

    async def worker(number: int) -> None:
        nonlocal done
        round_ = 0
        while loop.time() < deadline:
            base = (number * 1_000_000) + round_ * 20 + 1
            await acct.peers.save_many([Peer(base + i, PeerType.USER, access_hash=i) for i in range(20)])
            await acct.updates.remember(f"msg:{number}:{round_}")
            sum(i * i for i in range(20_000))  # a few milliseconds of the loop to ourselves
            await asyncio.sleep(0)
            round_ += 1
            done += 1

    await asyncio.gather(*(worker(n) for n in range(workers)))
    return done


async def holder_main(url: str, owner: str, ttl: float, heartbeat: float, mode: str, seconds: float) -> None:
    """hold: renew until killed. load: stay busy for `seconds`, write, release. lose: wait for a takeover."""
    store = await tgpersist.open_store(url)
    acct = store.account(NAME)
    lost = asyncio.Event()

    def on_lost(lease: tgpersist.SessionLease) -> None:
        emit("lost", token=lease.token, lost=lease.lost)
        lost.set()

    lease = await acct.session.acquire(owner=owner, ttl=ttl, heartbeat=heartbeat, on_lost=on_lost)
    emit("acquired", token=lease.token, expires=lease.expires_at.timestamp())
    if mode == "hold":
        await asyncio.sleep(3600)
    elif mode == "load":
        rounds = await busy_work(acct, seconds)
        emit("loaded", lost=lease.lost, token=lease.token, rounds=rounds)
        await acct.updates.save_state(UpdateState(pts=rounds, qts=1, date=2, seq=3))
        emit("wrote", pts=rounds)
        emit("released", freed=await lease.release())
    elif mode == "lose":
        # Freeze right after a renewal, when no transaction of ours is open (as a GC pause, VM migration
        # or debugger would, but at a moment that cannot leave a row lock or SQLite's write lock held).
        previous = lease.expires_at
        for _ in range(10_000):  # polled: a renewal sets no event
            await asyncio.sleep(0.005)
            if lease.expires_at != previous:
                break
        emit("renewed", expires=lease.expires_at.timestamp())
        os.kill(os.getpid(), signal.SIGSTOP)
        await lost.wait()
        try:
            await acct.updates.save_state(UpdateState(pts=999, qts=999, date=999, seq=999))
            emit("wrote")
        except LeaseLost as error:
            emit("refused", token=error.token)
        emit("released", freed=await lease.release())
    await store.close()


# -- the test side ------------------------------------------------------------------------------------
class Holder:
    """A holder process and its event stream."""

    def __init__(self, process: asyncio.subprocess.Process, errors: Path) -> None:
        self.process = process
        self.errors = errors

    @classmethod
    async def start(
        cls,
        url: str,
        tmp_path: Path,
        owner: str,
        *,
        ttl: float,
        heartbeat: float,
        mode: str,
        seconds: float = 0,
    ) -> Holder:
        errors = tmp_path / f"{owner}.stderr"
        with errors.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                url,
                owner,
                str(ttl),
                str(heartbeat),
                mode,
                str(seconds),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=sink,
            )
        return cls(process, errors)

    async def expect(self, event: str, within: float = 30) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), within)
            if not line:
                await self.process.wait()
                raise AssertionError(
                    f"holder exited ({self.process.returncode}) before {event!r}:\n{self.errors.read_text()}"
                )
            message: dict[str, Any] = json.loads(line)
            if message["event"] == event:
                return message

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    async def finish(self) -> int:
        return await asyncio.wait_for(self.process.wait(), 30)

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()  # SIGKILL: no cleanup, no release
            await self.process.wait()


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[tgpersist.Store]:
    """This process's store; opening it first migrates the database before any holder starts."""
    async with await tgpersist.open_store(db_url) as store:
        yield store


@pytest.fixture
async def holders() -> AsyncIterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        if holder.process.returncode is None:
            holder.signal(signal.SIGCONT)
        await holder.kill()


async def test_busy_while_held_then_taken_over_after_sigkill_and_stale_token_refused(
    client: tgpersist.Store, db_url: str, tmp_path: Path, holders: list[Holder]
) -> None:
    holder = await Holder.start(db_url, tmp_path, "first", ttl=TTL, heartbeat=HEARTBEAT, mode="hold")
    holders.append(holder)
    stale = (await holder.expect("acquired"))["token"]
    assert stale == 1
    acct = client.account(NAME)

    with pytest.raises(SessionBusy) as caught:
        await acct.session.acquire(owner="second", ttl=TTL)
    assert (caught.value.name, caught.value.owner) == (NAME, "first")
    seen = await acct.session.holder()
    assert seen is not None and (seen.owner, seen.token) == ("first", stale)

    await holder.kill()
    # The killed holder renewed at most a heartbeat ago, so its lease ends within TTL of the kill.
    lease = await acct.session.acquire(owner="second", ttl=TTL, wait=True, timeout=TTL + HEARTBEAT)
    assert (lease.owner, lease.token) == ("second", stale + 1)

    # Whatever the dead holder still had in flight carries its stale token: refused, nothing written.
    before = await acct.session.load()
    refused = [
        acct.session.save(
            Session(NAME, dc_id=4, auth_key=KEY, server_address="149.154.167.91", port=443), token=stale
        ),
        acct.dc_auth.save(DcAuth(dc_id=4, auth_key=KEY, ipv4="149.154.167.91", port=443), token=stale),
        acct.updates.save_state(UpdateState(pts=5, qts=6, date=7, seq=8), token=stale),
        acct.updates.save_channels([ChannelState(channel_id=10, pts=100)], token=stale),
    ]
    for write in refused:
        with pytest.raises(LeaseLost) as lost:
            await write
        assert lost.value.token == stale
    assert await acct.session.load() == before
    assert await acct.dc_auth.list() == []
    assert await acct.updates.load_state() is None
    assert await acct.updates.list_channels() == []

    # The new owner's own writes are fenced by its token, and go through.
    await acct.updates.save_state(UpdateState(pts=1, qts=2, date=3, seq=4))
    assert await acct.updates.load_state() == UpdateState(pts=1, qts=2, date=3, seq=4)
    assert await lease.release() is True


async def test_live_holder_under_load_keeps_the_lease_past_its_ttl_and_release_frees_it_at_once(
    client: tgpersist.Store, db_url: str, tmp_path: Path, holders: list[Holder]
) -> None:
    ttl, busy_for = 2.0, 3.0  # one and a half TTLs of load
    holder = await Holder.start(
        db_url, tmp_path, "busy", ttl=ttl, heartbeat=ttl / 3, mode="load", seconds=busy_for
    )
    holders.append(holder)
    token = (await holder.expect("acquired"))["token"]
    acct = client.account(NAME)
    loaded = asyncio.ensure_future(holder.expect("loaded"))
    refusals = 0
    while not loaded.done():
        with pytest.raises(SessionBusy) as caught:
            await acct.session.acquire(owner="rival", ttl=ttl)
        assert caught.value.owner == "busy"
        seen = await acct.session.holder()
        assert seen is not None and (seen.owner, seen.token) == ("busy", token)
        refusals += 1
        await asyncio.wait([loaded], timeout=0.25)
    report = loaded.result()
    assert (report["lost"], report["token"]) == (False, token)
    assert report["rounds"] > 0
    assert refusals >= 4
    wrote = await holder.expect("wrote")
    assert (await holder.expect("released"))["freed"] is True

    # Free at once: no waiting for the TTL.
    lease = await acct.session.acquire(owner="rival", ttl=ttl)
    assert lease.token == token + 1
    assert await acct.updates.load_state() == UpdateState(pts=wrote["pts"], qts=1, date=2, seq=3)
    await lease.release()
    assert await holder.finish() == 0


async def test_a_stalled_holder_learns_it_lost_the_lease_and_its_writes_are_refused(
    client: tgpersist.Store, db_url: str, tmp_path: Path, holders: list[Holder]
) -> None:
    ttl, heartbeat = 1.0, 0.3
    holder = await Holder.start(db_url, tmp_path, "stalled", ttl=ttl, heartbeat=heartbeat, mode="lose")
    holders.append(holder)
    token = (await holder.expect("acquired"))["token"]
    renewed = (await holder.expect("renewed"))["expires"]
    # The holder has stopped itself (SIGSTOP) and stays frozen past its TTL.
    acct = client.account(NAME)
    lease = await acct.session.acquire(owner="successor", ttl=30, heartbeat=0, wait=True, timeout=ttl + 5)
    assert lease.token == token + 1
    # Taken only once the database's clock had passed the frozen holder's last expiry.
    assert lease.expires_at.timestamp() >= renewed + 30 - 1e-3
    await acct.updates.save_state(UpdateState(pts=1, qts=1, date=1, seq=1))

    holder.signal(signal.SIGCONT)
    assert (await holder.expect("lost")) == {"event": "lost", "token": token, "lost": True}
    assert (await holder.expect("refused"))["token"] == token
    assert (await holder.expect("released"))["freed"] is False
    assert await holder.finish() == 0
    assert await acct.updates.load_state() == UpdateState(pts=1, qts=1, date=1, seq=1)
    assert (await acct.session.holder()) == LeaseInfo("successor", token + 1, lease.expires_at)
    await lease.release()


if __name__ == "__main__":
    url, owner, ttl, heartbeat, mode, seconds = sys.argv[1:7]
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(holder_main(url, owner, float(ttl), float(heartbeat), mode, float(seconds)))
