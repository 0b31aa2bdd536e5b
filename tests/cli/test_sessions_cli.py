"""`tgpersist sessions list`, `leases`, `session show`: tables on a terminal, tab-separated lines
otherwise, `--json` documents; one query, and no encryption key needed. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

import tgpersist
from tests.cli.accounts import populate
from tests.cli.run import cli, on_terminal
from tgpersist.encryption import ENV_VAR, EncryptionKey


@contextmanager
def selects(store: tgpersist.Store) -> Iterator[list[str]]:
    """The SELECT statements run on the store's engine while inside the block."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", record)


async def test_summaries_and_stats_are_one_query_each(db_url: str) -> None:
    await populate(db_url)
    async with await tgpersist.open_store(db_url, peer_cache_size=0) as store:
        with selects(store) as seen:
            summaries = await store.session_summaries()
        assert len(seen) == 1
        with selects(store) as seen:
            stats = await store.stats()
        assert len(seen) == 1
    alice, bob = summaries
    assert (alice.name, alice.dc_id, alice.user_id, alice.username) == ("alice", 2, 777, "alice_bot")
    assert (alice.lease_owner, alice.lease_token, alice.peers) == ("bot-1", 1, 3)
    q = alice.queue
    assert (q.available, q.in_flight, q.retry_wait, q.dead, q.pending) == (2, 1, 1, 1, 4)
    assert q.oldest_age is not None and q.oldest_age >= 0
    assert (bob.name, bob.dc_id, bob.lease_owner, bob.peers, bob.queue.pending) == ("bob", 4, None, 0, 0)
    no_age = {"oldest_age": None}  # taken at another instant
    assert {k: v.as_dict() | no_age for k, v in stats.items()} == {
        s.name: s.queue.as_dict() | no_age for s in summaries
    }


async def test_sessions_list_as_lines_and_json_without_the_encryption_key(
    capsys: pytest.CaptureFixture[str], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = EncryptionKey.generate()
    await populate(db_url)
    async with await tgpersist.open_store(db_url, encryption_key=key) as store:
        await store.reencrypt_auth_keys(key)
    monkeypatch.delenv(ENV_VAR, raising=False)

    status, out, err = await cli(capsys, "sessions", "list", "--url", db_url)
    assert (status, err) == (0, "")
    alice, bob = (line.split("\t") for line in out.splitlines())
    assert alice[:5] == ["alice", "2", "777", "@alice_bot", "bot-1"]
    assert alice[6:11] == ["3", "2", "1", "1", "1"]
    assert bob[:11] == ["bob", "4", "-", "-", "-", "-", "0", "0", "0", "0", "0"]

    status, out, err = await cli(capsys, "sessions", "list", "--json", "--url", db_url)
    assert (status, err) == (0, "")
    doc = json.loads(out)
    first = doc["sessions"][0]
    assert set(first) == {
        "name", "dc_id", "user_id", "username", "is_bot", "test_mode", "lease_owner", "lease_token",
        "lease_expires_at", "lease_problem", "peers", "queue", "updated_at",
    }  # fmt: skip
    assert (first["name"], first["user_id"], first["lease_owner"], first["lease_token"]) == (
        "alice",
        777,
        "bot-1",
        1,
    )
    assert {k: v for k, v in first["queue"].items() if k != "oldest_age"} == {
        "pending": 4,
        "available": 2,
        "in_flight": 1,
        "retry_wait": 1,
        "dead": 1,
    }
    assert doc["sessions"][1]["queue"]["oldest_age"] is None
    assert "auth_key" not in out and "api_hash" not in out

    # Showing one session loads its auth key: that does need the key.
    status, _, err = await cli(capsys, "session", "show", "alice", "--url", db_url)
    assert status == 1 and "encrypted" in err


async def test_leases_and_the_tables_on_a_terminal(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    await populate(db_url)
    status, out, _ = await cli(capsys, "leases", "--json", "--url", db_url)
    [lease] = json.loads(out)["leases"]
    assert status == 0
    assert (lease["session"], lease["owner"], lease["token"]) == ("alice", "bot-1", 1)
    assert 0 < lease["expires_in"] <= 600

    status, screen, _ = await on_terminal("sessions", "list", "--url", db_url)
    header, alice, bob = screen.splitlines()
    assert status == 0
    assert header.split() == [
        "NAME", "DC", "USER", "USERNAME", "LEASE", "EXPIRES", "PEERS", "AVAIL", "IN-FLIGHT", "WAIT",
        "DEAD", "UPDATED",
    ]  # fmt: skip
    assert alice.index("bot-1") == header.index("LEASE") and bob.index("-") == header.index("USER")
    assert alice.split()[:5] == ["alice", "2", "777", "@alice_bot", "bot-1"]

    status, screen, _ = await on_terminal("leases", "--url", db_url)
    header, row = screen.splitlines()
    assert header.split() == ["SESSION", "OWNER", "TOKEN", "EXPIRES", "IN"]
    assert row.split()[:3] == ["alice", "bot-1", "1"] and row.split()[3].endswith("s")


async def test_session_show_aligns_every_field(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    await populate(db_url)
    status, out, err = await cli(capsys, "session", "show", "alice", "--url", db_url)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    columns = {line.index(line.split(":", 1)[1].lstrip()) for line in lines}
    assert len(columns) == 1  # every value starts in the same column
    fields = dict(line.split(":", 1) for line in lines)
    assert fields["auth_key"].strip() == "<set, 256 bytes>" and fields["api_hash"].strip() == "<set>"
    assert fields["peers"].strip() == "3"
    assert fields["queue"].strip() == "2 available, 1 in flight, 1 waiting, 1 dead"
    assert fields["lease"].strip().startswith("held by bot-1 until ")
    assert "a" * 32 not in out
    status, _, err = await cli(capsys, "session", "show", "nobody", "--url", db_url)
    assert (status, err) == (1, "tgpersist: error: no session named 'nobody'\n")


async def test_keys_status_and_db_history_as_json(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    await populate(db_url)
    status, out, _ = await cli(capsys, "keys", "status", "--json", "--url", db_url)
    assert (status, json.loads(out)) == (0, {"auth_keys": [{"key_id": None, "count": 1}]})
    status, out, _ = await cli(capsys, "db", "history", "--json")
    revisions = json.loads(out)["revisions"]
    assert status == 0
    assert [r["revision"] for r in revisions if r["head"]] == list(tgpersist.migrate.heads())
    assert revisions[-1]["down_revision"] is None and all(
        set(r) == {"revision", "down_revision", "doc", "head"} for r in revisions
    )
