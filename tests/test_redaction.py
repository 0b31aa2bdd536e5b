"""No auth key or api hash in a repr, str, exception message, log record or command output.

Logs are captured at DEBUG for every logger (SQLAlchemy's, with echo on, and aiosqlite's included)
during a full `tgpersist demo` run and a Python API run, with and without encryption, on SQLite and
PostgreSQL; every text form of the secrets is searched for (raw, escaped, hex, base64, URL-safe base64).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

import tgpersist
from tests.leakcheck import leaks, log_text, secret_forms
from tests.test_encryption import API_HASH, AUTH_1, AUTH_2, AUTH_3, KEY_A, SECRET_A
from tgpersist import (
    ChannelState,
    Conversation,
    DcAuth,
    DurableUpdate,
    EncryptionError,
    InvalidArgument,
    Peer,
    PeerType,
    Session,
    UpdateState,
)
from tgpersist.cli import common, main
from tgpersist.encryption import ENV_VAR, AuthKeyCipher, KeyRing
from tgpersist.sql.redaction import ENGINE_LOGGER, LOGGING_NAME

FORMS = secret_forms([AUTH_1, AUTH_2, AUTH_3, SECRET_A], [API_HASH])
LOGGERS = ("", "sqlalchemy", "aiosqlite", "asyncpg", "tgpersist", "asyncio")


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG (SQLAlchemy sets its own root logger to WARNING: lowered here, too)."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    engine_logger = logging.getLogger(f"{ENGINE_LOGGER}.{LOGGING_NAME}")
    handlers = list(engine_logger.handlers)
    yield caplog
    for handler in engine_logger.handlers[:]:  # echo=True adds a stdout handler to the shared logger
        if handler not in handlers:
            engine_logger.removeHandler(handler)


@pytest.fixture(autouse=True)
def no_environment_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def full_session(name: str) -> Session:
    return Session(
        name,
        dc_id=2,
        api_id=12345,
        api_hash=API_HASH,
        auth_key=AUTH_1,
        server_address="149.154.167.51",
        port=443,
        user_id=777,
        first_name="Alice",
        username="alice",
        server_salt=42,
    )


def _record(obj: object) -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, __file__, 1, "%s %r", (obj, obj), None)


# -- reprs and messages ----------------------------------------------------------------------------
def test_reprs_and_strs_hide_keys_and_api_hash() -> None:
    session = full_session("alice")
    dc = DcAuth(4, auth_key=AUTH_2, server_salt=7, ipv4="149.154.167.91", port=443)
    ring = KeyRing.parse(KEY_A.export())
    shown = [
        repr(session),
        str(session),
        f"{session}",
        f"{session} {session!r}",
        logging.Formatter().format(_record(session)),
    ]
    shown += [repr(dc), str(dc), f"{dc!r}", repr([session, dc]), repr({"s": session})]
    shown += [repr(ring), str(ring), repr(ring.current), repr(AuthKeyCipher(ring))]
    assert leaks("\n".join(shown), FORMS) == []
    assert "auth_key=<redacted>" in repr(session) and "api_hash=<redacted>" in repr(session)
    assert "auth_key=<redacted>" in repr(dc)
    assert "auth_key=None" in repr(DcAuth(5))


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Session("a", auth_key=AUTH_1[:255]), "auth_key"),
        (lambda: Session("a", auth_key=AUTH_1 + b"\x00"), "auth_key"),
        (lambda: Session("a", auth_key=AUTH_1.hex()), "auth_key"),
        (lambda: Session("a", api_hash=API_HASH + "0"), "api_hash"),
        (lambda: Session("a", api_hash=API_HASH[:-1] + "g"), "api_hash"),
        (lambda: DcAuth(2, auth_key=AUTH_2[:100]), "auth_key"),
        (lambda: KeyRing.parse(SECRET_A.hex()[:-1] + "z"), "encryption_key"),
    ],
)
def test_validation_errors_never_show_the_secret(build: Any, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        build()
    assert info.value.field == field
    assert leaks(str(info.value) + repr(info.value), FORMS) == []


# -- a full demo run through the command line --------------------------------------------------------
@pytest.mark.parametrize("encrypted", [False, True], ids=["plaintext", "encrypted"])
async def test_demo_command_leaks_nothing(
    debug_logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    db_url: str,
    backend: str,
    encrypted: bool,
) -> None:
    if encrypted:
        monkeypatch.setenv(ENV_VAR, KEY_A.export())
    status = await asyncio.to_thread(main, ["demo", "--url", db_url])
    out, err = capsys.readouterr()
    assert status == 0, err
    # The secrets the demo generated, read back through the API.
    async with await tgpersist.open_store(db_url) as store:
        session = await store.account("demo").session.load()
        entries = await store.account("demo").dc_auth.list()
    assert session is not None and session.auth_key is not None and session.api_hash is not None
    keys = [session.auth_key, *(e.auth_key for e in entries if e.auth_key)]
    assert len(keys) == 2
    forms = secret_forms([*keys, SECRET_A], [session.api_hash])
    records = debug_logs.records
    names = {r.name for r in records}
    assert f"{ENGINE_LOGGER}.{LOGGING_NAME}" in names  # SQL and rows were logged...
    assert any(r.getMessage().startswith("Row ") for r in records)
    if backend == "sqlite":
        assert "aiosqlite" in names
    assert leaks(log_text(records), forms) == []  # ...but no secret in them
    assert leaks(out + err, forms) == []
    assert "auth_key=<redacted>" in out


# -- the Python API, with SQLAlchemy's echo on ----------------------------------------------------------
@pytest.mark.parametrize("echo", [True, "debug"])
@pytest.mark.parametrize("encrypted", [False, True], ids=["plaintext", "encrypted"])
async def test_python_api_run_leaks_nothing(
    debug_logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    db_url: str,
    encrypted: bool,
    echo: bool | str,
) -> None:
    key = SECRET_A if encrypted else None
    async with await tgpersist.open_store(db_url, encryption_key=key, echo=echo) as store:
        acct = store.account("alice")
        await acct.session.save(full_session("alice"))
        await acct.dc_auth.save(DcAuth(4, auth_key=AUTH_2, ipv4="149.154.167.91", port=443))
        await acct.dc_auth.save(DcAuth(4, auth_key=AUTH_3, media_only=True))
        await acct.peers.save_many([Peer(101, PeerType.USER, 1111, username="bob"), Peer(7, PeerType.CHAT)])
        await acct.conversations.save(
            Conversation(1, 2, step="s", data={"x": 1}, expires_at=datetime.now(UTC) + timedelta(hours=1))
        )
        await acct.updates.save_state(UpdateState(1, 2, 3, 4))
        await acct.updates.save_channel(ChannelState(5, 6))
        await acct.updates.remember("msg:1:1")
        await acct.updates.enqueue(DurableUpdate(b"payload", id="u1"))
        for update in await acct.updates.claim(5):
            await acct.updates.fail(update.id, RuntimeError("handler failed"))
        loaded = await acct.session.load()
        assert loaded == full_session("alice")
        assert [e.auth_key for e in await acct.dc_auth.list()] == [AUTH_2, AUTH_3]
        print(loaded, await acct.dc_auth.list(), store, acct)
        # A database error about a row holding a key: its message names no parameter.
        sessions = store.models.table(store.models.Session)
        with pytest.raises(IntegrityError) as info:
            async with store.engine.begin() as conn:
                await conn.execute(insert(sessions).values(name="alice", auth_key=AUTH_1, api_hash=API_HASH))
        assert leaks(str(info.value) + common.describe(info.value), FORMS) == []
        assert "SQL parameters hidden" in str(info.value)
    if encrypted:
        with pytest.raises(EncryptionError) as failure:
            await tgpersist.open_store(db_url)
        assert leaks(str(failure.value), FORMS) == []
    out, err = capsys.readouterr()
    assert "INFO" in out  # echo's own handler printed the SQL...
    assert leaks(out + err, FORMS) == []  # ...and nothing secret
    assert leaks(log_text(debug_logs.records), FORMS) == []
