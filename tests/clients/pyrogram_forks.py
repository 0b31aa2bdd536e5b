"""Run inside a Pyrofork or Hydrogram venv: one script of storage calls, call by call, on the fork's own
in-memory `SQLiteStorage` and on tgpersist's adapter; then the adapter again after reopening.

    python -m tests.clients.pyrogram_forks pyrofork|hydrogram DB_URL

Prints one JSON line: how many calls and observations were compared, and every difference.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import tgpersist

API_ID = 12345
KEY = bytes(range(256))
CHANNEL = -1_000_000_000_000
CH1, CH2, CH3 = CHANNEL - 11, CHANNEL - 12, CHANNEL - 99
PEERS = [
    (42, 1, "user", "alice", "15550042"),
    (43, 2, "bot", "bobby_bot", None),
    (44, 3, "user", None, "15550044"),
    (-11, 0, "group", None, None),
    (CH1, 4, "channel", "newsch", None),
    (CH2, 5, "supergroup", "chatroom", None),
    (CHANNEL - 13, 6, "forum", None, None),  # a type these forks cannot turn into an input peer
    (45, 9, "user", None, "15550042"),  # shares 42's phone number: the lower id is found
]
IDS = [42, 43, 44, 45, 46, -11, CH1, CH2, CHANNEL - 13, 77777, 999, -42]
USERNAMES = ["alice", "ALICE", "bobby_bot", "newsch", "newsch2", "chatroom", "carol", "orphan", "nobody"]
PHONES = ["15550042", "+15550042", "15550044", "555"]
FIELDS = ("dc_id", "api_id", "test_mode", "auth_key", "date", "user_id", "is_bot")

Call = Callable[[Any], Awaitable[Any]]


def script(fork: str) -> list[tuple[str, Call]]:
    """What the fork's client does to a new storage, then every kind of peer, username and state."""
    calls: list[tuple[str, Call]] = [
        ("api_id", lambda s: s.api_id(API_ID)),
        ("dc_id", lambda s: s.dc_id(2)),
        ("date", lambda s: s.date(0)),
        ("test_mode", lambda s: s.test_mode(False)),
        ("auth_key", lambda s: s.auth_key(KEY)),
        ("user_id none", lambda s: s.user_id(None)),
        ("is_bot none", lambda s: s.is_bot(None)),
        ("user_id", lambda s: s.user_id(42)),
        ("is_bot", lambda s: s.is_bot(False)),
        ("peers", lambda s: s.update_peers(PEERS)),
        ("replace 42", lambda s: s.update_peers([(42, 4242, "user", "alice", "15550042")])),
        ("dc 4", lambda s: s.dc_id(4)),
    ]
    if fork == "pyrofork":
        calls += [
            (
                "usernames",
                lambda s: s.update_usernames([(CH1, "newsch"), (CH1, "newsch2"), (77777, "orphan")]),
            ),
            ("carol", lambda s: s.update_usernames([(44, "carol")])),
            ("orphan's peer", lambda s: s.update_peers([(77777, 7, "user", None, None)])),
            ("carol moves", lambda s: s.update_usernames([(45, "carol")])),
            ("primary gone", lambda s: s.update_peers([(CH1, 4, "channel", None, None)])),
            ("state 0", lambda s: s.update_state((0, 1, None, 100, None))),
            ("state ch1", lambda s: s.update_state((CH1, 10, None, 101, None))),
            ("state ch2", lambda s: s.update_state((CH2, 20, None, 99, None))),
            ("state ch3", lambda s: s.update_state((CH3, 30, None, 98, None))),
            ("states", lambda s: s.update_state()),
            ("delete ch2", lambda s: s.update_state(CH2)),
            ("remove ch3", lambda s: s.remove_state(CH3)),
            ("remove absent", lambda s: s.remove_state(CHANNEL - 98)),
            ("state 0 again", lambda s: s.update_state((0, 5, None, 102, None))),
        ]
    calls += [("is_bot true", lambda s: s.is_bot(True)), ("is_bot false", lambda s: s.is_bot(False))]
    return calls


async def outcome(call: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return ("ok", repr(await call()))
    except Exception as error:
        return (type(error).__name__, str(error))


async def observe(storage: Any, fork: str) -> dict[str, Any]:
    """Everything the fork's client can read back from a storage."""
    seen: dict[str, Any] = {
        "fields": [repr(await getattr(storage, name)()) for name in FIELDS],
        "by_id": [await outcome(lambda i=i: storage.get_peer_by_id(i)) for i in IDS],
        "by_username": [await outcome(lambda u=u: storage.get_peer_by_username(u)) for u in USERNAMES],
        "by_phone": [await outcome(lambda p=p: storage.get_peer_by_phone_number(p)) for p in PHONES],
        "session_string": await outcome(storage.export_session_string),
    }
    if fork == "pyrofork":
        seen["states"] = repr(await storage.update_state())
    return seen


def reference(fork: str) -> Any:
    if fork == "pyrofork":
        from pyrogram.storage import MemoryStorage

        return MemoryStorage("reference")
    from hydrogram.storage import SQLiteStorage

    return SQLiteStorage("reference", use_memory=True)


def adapter(fork: str, store: tgpersist.Store, name: str) -> Any:
    if fork == "pyrofork":
        from tgpersist.adapters.pyrogram import PyrogramStorage

        return PyrogramStorage(store, name)
    from tgpersist.adapters.hydrogram import HydrogramStorage

    return HydrogramStorage(store, name)


def after_reopening(expected: dict[str, Any]) -> dict[str, Any]:
    """What reopening is documented to change: channel states come back without their date."""
    if "states" not in expected:
        return expected
    return {**expected, "states": repr([(CH1, 10, None, None, None), (0, 5, None, 102, None)])}


async def main(fork: str, url: str) -> dict[str, Any]:
    differences: list[Any] = []
    compared = 0
    ours_engine, theirs = None, reference(fork)
    async with await tgpersist.open_store(url) as store:
        ours_engine = adapter(fork, store, "differential")
        pairs = [("open", lambda s: s.open()), *script(fork)]
        for label, call in pairs:
            results = [await outcome(lambda e=engine, c=call: c(e)) for engine in (theirs, ours_engine)]
            observed = [await observe(engine, fork) for engine in (theirs, ours_engine)]
            compared += 1
            if results[0] != results[1] or observed[0] != observed[1]:
                differences.append(
                    {"after": label, "sqlite": [results[0], observed[0]], "ours": [results[1], observed[1]]}
                )
        expected = await observe(theirs, fork)
        for engine in (theirs, ours_engine):
            engine.USERNAME_TTL = -1
        expired = [await observe(engine, fork) for engine in (theirs, ours_engine)]
        if expired[0]["by_username"] != expired[1]["by_username"]:
            differences.append({"after": "USERNAME_TTL = -1", "sqlite": expired[0], "ours": expired[1]})
        await ours_engine.close()
        await theirs.close()
    async with await tgpersist.open_store(url) as store:
        reopened = adapter(fork, store, "differential")
        await reopened.open()
        again = await observe(reopened, fork)
        await reopened.close()
        compared += 1
        if again != after_reopening(expected):
            differences.append({"after": "reopening", "expected": after_reopening(expected), "ours": again})
    return {"fork": fork, "calls": compared, "differences": differences}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2])), default=repr))
