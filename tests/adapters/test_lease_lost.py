"""What an adapter does by default when its session lease is lost: log at ERROR, disconnect the client
it serves, and wipe the auth key from memory (the very object Telethon's sender encrypts with)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from telethon import TelegramClient
from telethon.crypto import AuthKey
from telethon.sessions import MemorySession

import tgpersist
from tests.adapters.support import steal_lease
from tgpersist.adapters.telethon import TelethonSession
from tgpersist.testing import fresh_name

API_ID = 12345
API_HASH = "0123456789abcdef0123456789abcdef"
KEY = bytes(range(256))


class RecordingClient(TelegramClient):  # type: ignore[misc]
    """A real client that also notes each `disconnect()` (there is no Telegram to connect to here)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.disconnects = 0

    async def disconnect(self) -> None:
        self.disconnects += 1
        await super().disconnect()


async def wait_until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never came true")


async def test_by_default_a_lost_lease_disconnects_the_client_and_wipes_the_key(
    store: tgpersist.Store, caplog: pytest.LogCaptureFixture
) -> None:
    name = fresh_name()
    session = await TelethonSession.open(store, name, owner="first", ttl=3)
    session.auth_key = AuthKey(KEY)
    client = RecordingClient(session, API_ID, API_HASH)
    other = RecordingClient(MemorySession(), API_ID, API_HASH)  # on another session: left alone
    key = session.auth_key
    assert client._sender.auth_key is key and session.clients() == [client]

    await session.flush()
    await steal_lease(store, name)
    await wait_until(lambda: client.disconnects)
    await wait_until(lambda: session.auth_key is None)
    assert session.lease is not None and session.lease.lost
    assert (client.disconnects, other.disconnects) == (1, 0)
    assert key.key is None and client._sender.auth_key.key is None
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "lost" in r.getMessage()]
    assert errors and errors[0].session == name  # type: ignore[attr-defined]
    assert KEY.hex() not in caplog.text
    # The key stays stored: it is the new owner's now, not ours to delete.
    stored = await store.account(name).session.load()
    assert stored is not None and stored.auth_key == KEY


async def test_an_on_lost_of_the_callers_replaces_the_default(store: tgpersist.Store) -> None:
    name = fresh_name()
    told: list[Any] = []
    session = await TelethonSession.open(store, name, owner="first", ttl=3, on_lost=told.append)
    session.auth_key = AuthKey(KEY)
    client = RecordingClient(session, API_ID, API_HASH)
    await session.flush()
    await steal_lease(store, name)
    await wait_until(lambda: told)
    await asyncio.sleep(0.05)
    assert told == [session.lease] and client.disconnects == 0 and session.auth_key is not None
    session.stop_using_auth_key(told[0])  # what a caller's own on_lost may call to get the default too
    await wait_until(lambda: client.disconnects == 1 and session.auth_key is None)


async def test_by_default_a_lost_lease_disconnects_the_kurigram_client(
    store: tgpersist.Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The Pyrogram-family adapters (Kurigram here; Pyrofork and Hydrogram share the code) do the same:
    ERROR, the connected client that uses this storage disconnected, the key gone from memory."""
    from pyrogram import Client

    from tgpersist.adapters.pyrogram import PyrogramStorage

    class RecordingPyrogram(Client):  # type: ignore[misc]
        """A real client that notes `disconnect()` (there is no Telegram to connect to here)."""

        disconnects = 0

        async def disconnect(self) -> None:
            self.disconnects += 1
            self.is_connected = False

    name = fresh_name()
    storage = PyrogramStorage(store, name, owner="first", ttl=3)
    await storage.open()
    await storage.auth_key(KEY)
    client = RecordingPyrogram(name, api_id=API_ID, api_hash=API_HASH, storage_engine=storage)
    client.is_connected = True
    assert storage.clients() == [client]
    await steal_lease(store, name)
    await wait_until(lambda: client.disconnects)
    await wait_until(lambda: storage.lease is not None and storage.lease.lost)
    assert await storage.auth_key() is None
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "lost" in r.getMessage()]
    assert errors and errors[0].session == name  # type: ignore[attr-defined]
    assert KEY.hex() not in caplog.text
    stored = await store.account(name).session.load()
    assert stored is not None and stored.auth_key == KEY
