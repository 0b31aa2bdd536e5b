"""Run inside a Pyrofork or Hydrogram venv: the fork's own `Client` takes tgpersist's storage, loads a
stored session without the network, resolves cached peers, and exports the fork's session string; and
`tgpersist import` reads a `.session` file the fork wrote itself.

    python -m tests.clients.fork_clients pyrofork|hydrogram DB_URL WORKDIR
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import tgpersist
from tests.clients.cli import tgpersist_cli
from tests.clients.pyrogram_forks import API_ID, CH1, KEY, adapter, reference

API_HASH = "0123456789abcdef0123456789abcdef"


def client_class(fork: str) -> Any:
    if fork == "pyrofork":
        from pyrogram import Client
    else:
        from hydrogram import Client
    return Client


def short(peer: Any) -> str:
    values = [getattr(peer, slot) for slot in peer.__slots__ if not slot.startswith("_")]
    return f"{type(peer).__name__}({', '.join(map(str, values))})"


async def invalid(call: Callable[[], Awaitable[Any]]) -> str:
    try:
        await call()
    except tgpersist.InvalidArgument as error:
        return f"InvalidArgument:{error.field}"
    except Exception as error:
        return type(error).__name__
    return "accepted"


def file_storage(fork: str, workdir: Path) -> Any:
    if fork == "pyrofork":
        from pyrogram.storage import FileStorage

        return FileStorage("forkfile", workdir)
    from hydrogram.storage import SQLiteStorage

    return SQLiteStorage("forkfile", workdir)


async def imported_file(fork: str, url: str, workdir: Path) -> dict[str, Any]:
    """A `.session` file the fork itself wrote, through `tgpersist import`: what the store then holds."""
    storage = file_storage(fork, workdir)
    await storage.open()
    for field, value in (("api_id", API_ID), ("dc_id", 4), ("test_mode", False), ("auth_key", KEY)):
        await getattr(storage, field)(value)
    await storage.user_id(42)
    await storage.is_bot(False)
    await storage.update_peers([(42, 1, "user", "alice", "15550042"), (CH1, 4, "channel", "news", None)])
    if fork == "pyrofork":
        await storage.update_usernames([(CH1, "news"), (CH1, "news_two")])
        await storage.update_state((0, 7, None, 100, None))
        await storage.update_state((CH1, 9, None, 100, None))
    await storage.save()
    await storage.close()
    done = tgpersist_cli("import", str(workdir / "forkfile.session"), "--name", "f", "--url", url)
    async with await tgpersist.open_store(url) as store:
        account = store.account("f")
        session = await account.session.load()
        peers = {p.dialog_id: p for p in await account.peers.list()}
        state = await account.updates.load_state()
        channels = await account.updates.list_channels()
    return {
        "exit": done.returncode,
        "session": None
        if session is None
        else [session.dc_id, session.api_id, session.auth_key == KEY, session.user_id],
        "peers": {
            str(i): [p.access_hash, list(p.usernames), p.phone_number] for i, p in sorted(peers.items())
        },
        "state": None if state is None else [state.pts, state.date],
        "channels": [[c.channel_id, c.pts] for c in channels],
    }


async def main(fork: str, url: str) -> dict[str, Any]:
    fields = {
        "api_id": API_ID,
        "dc_id": 4,
        "test_mode": False,
        "auth_key": KEY,
        "user_id": 42,
        "is_bot": False,
    }
    async with await tgpersist.open_store(url) as store:
        storage = adapter(fork, store, "client")
        await storage.open()
        for field, value in fields.items():
            await getattr(storage, field)(value)
        await storage.update_peers([(42, 1, "user", "alice", None), (CH1, 4, "channel", None, None)])
        checks = [
            lambda: storage.dc_id(203),
            lambda: storage.update_peers([(1, 1, "martian", None, None)]),
            lambda: storage.update_peers([(-5, 1, "user", None, None)]),
        ]
        if fork == "pyrofork":
            checks += [
                lambda: storage.update_state((42, 1, None, 1, None)),
                lambda: storage.update_usernames(["ab"]),
            ]
        rejected = [await invalid(call) for call in checks]
        await storage.close()

    async with await tgpersist.open_store(url) as store:
        storage = adapter(fork, store, "client")
        option = "storage" if fork == "pyrofork" else "session_storage_engine"
        client = client_class(fork)("client", api_id=API_ID, api_hash=API_HASH, **{option: storage})
        await client.load_session()  # opens the storage; the session is complete, so no network
        resolved = [short(await client.storage.get_peer_by_id(i)) for i in (42, CH1)]
        theirs = reference(fork)
        await theirs.open()
        for field, value in fields.items():
            await getattr(theirs, field)(value)
        matches = await client.export_session_string() == await theirs.export_session_string()
        await theirs.close()
        await client.storage.close()
        released = await store.account("client").session.holder() is None
        return {
            "uses_our_storage": client.storage is storage,
            "session_string_matches": matches,
            "resolved": resolved,
            "lease_released": released,
            "invalid": rejected,
        }


async def both(fork: str, url: str, workdir: Path) -> dict[str, Any]:
    return {**await main(fork, url), "file": await imported_file(fork, url, workdir)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(both(sys.argv[1], sys.argv[2], Path(sys.argv[3]))), default=repr))
