"""Run inside a grammers venv: a file grammers' `SqliteSession` wrote is imported (`tgpersist import`),
exported again (`tgpersist export --format grammers`) and opened by `SqliteSession`, which must read
back what it wrote; `GrammersSession` on the imported account answers the same.

    python -m tests.clients.grammers_files DB_URL WORKDIR
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from grammers.sessions import (
    ChannelKind,
    ChannelState,
    DcOption,
    PeerId,
    PeerInfo,
    SqliteSession,
    UpdatesState,
)

import tgpersist
from tests.clients.cli import tgpersist_cli
from tgpersist.adapters.grammers import GrammersSession

KEY2, KEY4 = bytes(range(256)), bytes(reversed(range(256)))
PEERS = [
    PeerInfo.User(42, 1, False, True),
    PeerInfo.User(43, 2, True, None),
    PeerInfo.Chat(11),
    PeerInfo.Channel(11, 4, ChannelKind.Broadcast),  # SqliteSession 0.4.8 reads it back as a gigagroup
]
LOOKUPS: list[Any] = [42, 43, 44, -11, -1000000000011, PeerId.self_user()]


async def observe(session: Any) -> list[Any]:
    state = await session.updates_state()
    return [
        await session.home_dc_id(),
        [repr(await session.dc_option(i)) for i in range(1, 6)],
        [repr(await session.peer(p)) for p in LOOKUPS],
        [state.pts, state.qts, state.date, state.seq, sorted((c.id, c.pts) for c in state.channels)],
    ]


def cli(*args: str) -> str:
    done = tgpersist_cli(*args)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return done.stdout


async def main(url: str, workdir: str) -> dict[str, Any]:
    original, exported = Path(workdir) / "original.session", Path(workdir) / "exported.session"
    written = SqliteSession(str(original))
    await written.set_home_dc_id(4)
    await written.set_dc_option(DcOption(4, "149.154.167.91:443", "[2001:67c:4e8:f004::a]:443", KEY4))
    await written.set_dc_option(DcOption(2, "149.154.167.41:443", None, KEY2))
    for peer in PEERS:
        await written.cache_peer(peer)
    await written.set_update_state(UpdatesState(1, 2, 3, 4, [ChannelState(11, 10)]))
    expected = await observe(written)
    await written.close()

    imported = cli("import", str(original), "--name", "g", "--url", url)
    cli("export", "g", "--format", "grammers", "--out", str(exported), "--url", url)
    reread = SqliteSession(str(exported))
    again = await observe(reread)
    await reread.close()
    async with await tgpersist.open_store(url) as store:
        session = await GrammersSession.open(store, "g")
        ours = await observe(session)
        await session.aclose()
        row = await store.account("g").session.load()
    return {
        "imported": imported.splitlines()[0] if imported else "",
        "exported_reads_back": again == expected,
        "adapter_reads_it": ours[:2] == expected[:2] and ours[3] == expected[3],
        "peers": [ours[2][i] == expected[2][i] for i in range(len(LOOKUPS))],
        "channel": ours[2][4] == repr(PEERS[3]),
        "session": None if row is None else [row.dc_id, row.auth_key == KEY4, row.user_id, row.is_bot],
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2])), default=repr))
