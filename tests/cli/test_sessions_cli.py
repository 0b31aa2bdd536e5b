"""`tgpersist sessions list`: every session with who holds its lease and until when, on SQLite and PostgreSQL.

Commands run in-process, in a worker thread (`main` owns its event loop).
"""

from __future__ import annotations

import asyncio

import pytest

import tgpersist
from tgpersist import Session
from tgpersist.cli import main

KEY = bytes(range(256))


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `tgpersist ARGV`."""
    capsys.readouterr()
    status = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return status, out, err


async def test_sessions_list_shows_each_lease_holder_and_expiry(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    async with await tgpersist.open_store(db_url) as store:
        await store.account("alice").session.save(
            Session("alice", dc_id=2, auth_key=KEY, user_id=777, username="alice_bot")
        )
        await store.account("bob").session.save(Session("bob", dc_id=4))
        held = await store.account("alice").session.acquire(owner="bot-1", ttl=600, heartbeat=0)
        # dave's and carol's holders stopped renewing; carol's lease was then taken over by bot-4.
        await store.account("dave").session.acquire(owner="bot-3", ttl=0.2, heartbeat=0)
        lapsed = await store.account("carol").session.acquire(owner="bot-2", ttl=0.2, heartbeat=0)
        await store.account("carol").session.acquire(
            owner="bot-4", ttl=600, heartbeat=0, wait=True, timeout=10
        )
        carol = await store.account("carol").session.holder()
        assert carol is not None and carol.token == lapsed.token + 1

        status, out, err = await cli(capsys, "sessions", "list", "--url", db_url)
        until = held.expires_at.isoformat(timespec="seconds")
        carol_until = carol.expires_at.isoformat(timespec="seconds")
        assert (status, err) == (0, "")
        assert out.splitlines() == [
            f"alice\tdc 2, user 777 (@alice_bot), auth key set\theld by bot-1 until {until} (token 1)",
            "bob\tdc 4, no user, no auth key\tfree",
            f"carol\tdc -, no user, no auth key\theld by bot-4 until {carol_until} (token 2)",
            "dave\tdc -, no user, no auth key\tfree",
        ]

        await held.release()
        status, out, _ = await cli(capsys, "sessions", "list", "--url", db_url)
        assert status == 0
        assert out.splitlines()[0] == "alice\tdc 2, user 777 (@alice_bot), auth key set\tfree"
