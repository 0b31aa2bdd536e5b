"""One regression test per numbered item of issue 16, on SQLite and PostgreSQL (item 5, SQLite files,
is in tests/test_sqlite_files.py: PostgreSQL has no file of ours)."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import traceback
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text, update

import tgpersist
from tests.cli.run import cli
from tests.hostile.support import contents, nested
from tests.importers.clients import make_telethon_file
from tests.leakcheck import leaks, secret_forms
from tgpersist import (
    Conversation,
    DurableUpdate,
    InvalidArgument,
    Session,
    Store,
    UnsupportedSessionFile,
)
from tgpersist.errors import ConstraintViolation, UnreadableRow
from tgpersist.importers import import_session_file

KEY = bytes(range(256))
WEST, EAST = timezone(-timedelta(hours=5)), timezone(timedelta(hours=5))
API_HASH = "0123456789abcdef0123456789abcdef"


async def set_lease_expires(store: Store, name: str, value: float) -> None:
    sessions = store.models.table(store.models.Session)
    async with store.engine.begin() as conn:
        await conn.execute(
            update(sessions).where(sessions.c.name == name).values(lease_owner="ghost", lease_expires=value)
        )


# -- 1. acquire(ttl=1e12), and a lease row out of range ----------------------------------------------
async def test_1_a_millisecond_ttl_is_rejected_and_an_unreadable_lease_is_taken_over(
    store: Store, backend: str, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    account = store.account("alice")
    await account.session.save(Session("alice", dc_id=2))
    before = await contents(store)
    with pytest.raises(InvalidArgument) as info:
        await account.session.acquire(owner="w", ttl=1e12)
    assert info.value.field == "ttl"
    assert await contents(store) == before
    # What an older version committed (year 33715), or what a hand edit leaves: never a lock forever.
    values = [1e12 + 1e9, 1e300, math.inf] + ([math.nan] if backend == "postgresql" else [])
    for value in values:
        await set_lease_expires(store, "alice", value)
        with pytest.raises(UnreadableRow) as unreadable:
            await account.session.holder()
        assert (unreadable.value.session, unreadable.value.field) == ("alice", "lease_expires")
        status, out, err = await cli(capsys, "sessions", "list", "--url", db_url)
        assert (status, err) == (0, "")
        assert out.startswith("alice\t") and "unreadable lease" in out
        lease = await store.account("alice").session.acquire(owner="rescuer", ttl=30, heartbeat=0)
        holder = await account.session.holder()
        assert holder is not None and (holder.owner, holder.token) == ("rescuer", lease.token)
        await lease.release()
    assert await account.session.holder() is None


# -- 2. durations, nesting, expires_at, ids beyond a column ------------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e12, 10**400, timedelta.max])
async def test_2_hostile_durations_are_invalid_arguments(store: Store, bad: object) -> None:
    account = store.account("q")
    await account.updates.enqueue(DurableUpdate(b"p", id="u"))
    assert [u.id for u in await account.updates.claim(1, owner="w")] == ["u"]
    before = await contents(store)
    calls = {
        "ttl": lambda: account.updates.remember("k", bad),  # type: ignore[arg-type]
        "lease": lambda: account.updates.claim(1, lease=bad),  # type: ignore[arg-type]
        "delay": lambda: account.updates.enqueue(b"x", delay=bad),  # type: ignore[arg-type]
        "retry_in": lambda: account.updates.fail("u", "e", retry_in=bad),  # type: ignore[arg-type]
        "lease ": lambda: account.updates.extend_lease("u", owner="w", lease=bad),  # type: ignore[arg-type]
    }
    for field, call in calls.items():
        with pytest.raises(InvalidArgument) as info:
            await call()
        assert info.value.field == field.strip()
    assert await contents(store) == before


async def test_2_deep_data_extreme_expiry_and_wide_ids_are_invalid_arguments(store: Store) -> None:
    account = store.account("c")
    await account.dc_auth.save(tgpersist.DcAuth(2, auth_key=KEY))
    before = await contents(store)
    cases = [
        ("data", lambda: Conversation(1, 2, data=nested(100_000))),
        ("data", lambda: Conversation(1, 2, data=nested(100_000, as_dict=True))),
        (
            "expires_at",
            lambda: Conversation(1, 2, expires_at=datetime.max.replace(tzinfo=timezone(-timedelta(hours=5)))),
        ),
        (
            "expires_at",
            lambda: Conversation(1, 2, expires_at=datetime.min.replace(tzinfo=timezone(timedelta(hours=5)))),
        ),
        ("expires_at", lambda: Conversation(1, 2, expires_at=datetime.max.replace(tzinfo=UTC))),
    ]
    for field, build in cases:
        with pytest.raises(InvalidArgument) as info:
            build()
        assert info.value.field == field
    for call in (
        account.dc_auth.delete(2**40),
        account.dc_auth.load(2**40),
        account.dc_auth.delete(-(2**31) - 1),
    ):
        with pytest.raises(InvalidArgument) as info:
            await call
        assert info.value.field == "dc_id"
    assert await contents(store) == before


# -- 3. fail() keeps the first 4,096 characters of any error -----------------------------------------
async def test_3_fail_keeps_the_first_4096_characters_of_any_error(store: Store) -> None:
    account = store.account("f")
    huge = "é" + "x" * (2 << 20)
    cases: list[object] = [huge, RuntimeError(huge), ValueError("a\x00b\udcff" * 3000)]
    for number, error in enumerate(cases):
        await account.updates.enqueue(DurableUpdate(b"p", id=f"u{number}"))
        assert await account.updates.fail(f"u{number}", error) is True  # type: ignore[arg-type]
        stored = await account.updates.get(f"u{number}")
        assert stored is not None and stored.last_error is not None and len(stored.last_error) == 4096
    assert (await account.updates.get("u0")).last_error == huge[:4096]  # type: ignore[union-attr]
    assert (await account.updates.get("u1")).last_error == ("RuntimeError: " + huge)[:4096]  # type: ignore[union-attr]
    assert (await account.updates.get("u2")).last_error == ("ValueError: " + "a\ufffdb\ufffd" * 3000)[:4096]  # type: ignore[union-attr]


# -- 4. importers: corrupted text, infinite dates, FIFOs -----------------------------------------------
def corrupt_a_table_name(path: Path) -> Path:
    """A valid Telethon file plus a table whose name is not UTF-8 (patched in place, same length)."""
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE zzqq_marker (x)")
    conn.commit()
    conn.close()
    data = path.read_bytes()
    assert data.count(b"zzqq_marker") >= 2
    path.write_bytes(data.replace(b"zzqq_marker", b"zz\xff\xfe_marker"))
    return path


async def test_4_importers_turn_every_problem_into_one_typed_error(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    telethon = make_telethon_file(tmp_path / "good")
    broken_name = corrupt_a_table_name(make_telethon_file(tmp_path / "badname"))
    infinite: dict[str, Path] = {}
    for sign in ("", "-"):
        path = make_telethon_file(tmp_path / f"inf{sign or 'plus'}")
        import sqlite3

        conn = sqlite3.connect(path)
        conn.execute(f"UPDATE update_state SET date = {sign}9e999 WHERE id = 0")
        conn.commit()
        conn.close()
        infinite[sign] = path
    fifo = tmp_path / "pipe.session"
    os.mkfifo(fifo)
    cases = {
        broken_name: "",
        infinite[""]: "update_state row 0: date",
        infinite["-"]: "update_state row 0: date",
        fifo: "is a FIFO (named pipe), not a regular file",
        tmp_path: "is a directory, not a regular file",
        Path("/dev/null"): "is a character device, not a regular file",
    }
    await import_session_file(store, telethon, "kept")
    before = await contents(store)
    for path, problem in cases.items():
        with pytest.raises(UnsupportedSessionFile) as info:
            await asyncio.wait_for(import_session_file(store, path, "new"), 30)
        assert str(info.value).startswith(f"{path}: ") and problem in str(info.value)
        assert info.value.__cause__ is None
        status, out, err = await asyncio.wait_for(
            cli(capsys, "import", str(path), "--name", "n", "--url", db_url), 60
        )
        assert (status, out) == (1, "")
        assert err.count("\n") == 1 and err.startswith(f"tgpersist: error: {path}: "), err
    assert await contents(store) == before


# -- 6. a constraint error carries no secret ------------------------------------------------------------
async def add_host_check(store: Store, backend: str) -> None:
    """A constraint a host application added to our sessions table: no session on DC 3."""
    table = store.models.table(store.models.Session).name
    async with store.engine.begin() as conn:
        if backend == "postgresql":
            await conn.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT host_no_dc3 CHECK (dc_id <> 3)"))
        else:
            await conn.execute(
                text(
                    f"CREATE TRIGGER host_no_dc3 BEFORE INSERT ON {table} WHEN NEW.dc_id = 3 "
                    "BEGIN SELECT RAISE(ABORT, 'host_no_dc3'); END"
                )
            )


async def test_6_a_constraint_violation_names_table_and_constraint_and_carries_no_secret(
    store: Store, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    await add_host_check(store, backend)
    account = store.account("secretive")
    session = Session("secretive", dc_id=3, api_id=1, api_hash=API_HASH, auth_key=KEY)
    before = await contents(store)
    with pytest.raises(ConstraintViolation) as info:
        await account.session.save(session)
    error = info.value
    table = store.models.table(store.models.Session).name
    assert (error.table, error.kind) == (table, "check" if backend == "postgresql" else "integrity")
    if backend == "postgresql":
        assert error.constraint == "host_no_dc3"
        assert str(error) == f"table {table}: check constraint host_no_dc3 violated"
    else:  # a trigger's RAISE text is the host's own words (they could hold values): not repeated
        assert error.constraint is None
        assert str(error) == f"table {table}: integrity constraint violated"
    assert error.__cause__ is None and error.__context__ is None
    assert repr(error.driver_error) == "<concealed IntegrityError>"
    assert error.driver_error.value.params is None  # hide_parameters honoured in params too
    forms = secret_forms([KEY], [API_HASH])
    logging.getLogger("host").error("save failed", exc_info=error)
    printed = "".join(traceback.format_exception(error)) + repr(error) + caplog.text
    assert leaks(printed, forms) == []
    if backend == "postgresql":  # what used to be printed: the server's DETAIL, the row with its secrets
        assert leaks("".join(traceback.format_exception(error.driver_error.value)), forms) != []
    assert await contents(store) == before
