"""`tgpersist demo`: the README's first command, on both backends, run twice on the same database."""

from __future__ import annotations

import re

import pytest

import tgpersist
from tgpersist.cli import main


async def test_demo_stores_and_reports_every_part(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(2):  # a second run on the same database works too
        assert await _run(["demo", "--url", db_url]) == 0
        out = capsys.readouterr().out
        assert "saved session 'demo' and 4 peers" in out
        assert "peer by username @DevChat: dialog id -1000001234567" in out
        assert re.search(r"remember msg:101:\d+ -> True, again -> False", out)
        assert "durable queue: claimed and acked ['u1', 'u2']" in out
        assert "lease released; holder now: None" in out
        assert "same DC, address and auth key: True" in out
        assert "auth_key=<redacted>" in out
    async with await tgpersist.open_store(db_url) as store:
        acct = store.account("demo")
        assert await acct.peers.count() == 4
        assert (await acct.updates.load_state()) == tgpersist.UpdateState(101, 5, 1_700_000_001, 4)
        assert await acct.session.holder() is None


async def _run(argv: list[str]) -> int:
    # main() runs its own event loop: call it from a worker thread, as a console script would run it.
    import asyncio

    return await asyncio.to_thread(main, argv)
