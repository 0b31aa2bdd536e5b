"""Exported Telethon `.session` files, opened by Telethon itself; stores on SQLite and PostgreSQL."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from telethon.sessions import SQLiteSession
from telethon.tl import types as tl

from tests.exporters.account import AUTH_KEY, CHANNELS, SENT_FILES, STATE, USER_ID, fill
from tests.importers.clients import peer_facts, sqlite_rows
from tgpersist import InvalidArgument, PeerType, Store
from tgpersist.exporters import ExportResult, SessionNotFound, export_session_file
from tgpersist.importers import import_session_file


@pytest.mark.parametrize("address", ["149.154.167.91", "2001:67c:4e8:f004::a"])
async def test_telethon_opens_the_exported_file_with_identical_values(
    store: Store, tmp_path: Path, address: str
) -> None:
    await fill(store, server_address=address)
    out = tmp_path / "alice.session"
    result = await export_session_file(store, "alice", out, "telethon")
    assert result == ExportResult(
        path=out, format="telethon", peers=8, skipped=1, channels=2, update_state=True, sent_files=2
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sqlite_rows(out, "select version from version") == [(8,)]  # current: Telethon will not upgrade it

    telethon = SQLiteSession(str(out))
    try:
        assert (telethon.dc_id, telethon.server_address, telethon.port) == (4, address, 443)
        assert telethon.auth_key.key == AUTH_KEY
        assert telethon.takeout_id == 555
        assert telethon.get_input_entity(0).access_hash == USER_ID  # Telethon's "self" entity
        alice = tl.InputPeerUser(101, -(2**63))
        for key in (101, "alice", "ALICE", "@alice", "+15550101", "Alice Smith"):
            assert telethon.get_input_entity(key) == alice
        assert telethon.get_input_entity("helper_bot") == tl.InputPeerUser(102, 2**63 - 1)
        assert telethon.get_input_entity(-55) == tl.InputPeerChat(55)
        assert telethon.get_input_entity("newschan") == tl.InputPeerChannel(1234, 99)
        for bare, access_hash in ((1235, -98), (1236, 97), (1237, 96), (1238, 95)):
            assert telethon.get_input_entity(-1_000_000_000_000 - bare) == tl.InputPeerChannel(
                bare, access_hash
            )
        with pytest.raises(ValueError):
            telethon.get_input_entity(103)  # no access hash: not written
        states = {i: (s.pts, s.qts, int(s.date.timestamp()), s.seq) for i, s in telethon.get_update_states()}
        # Telethon's own `get_file` cannot build today's InputDocument (no file_reference): its query, then
        found = [
            telethon._execute(
                "select id, hash from sent_files where md5_digest = ? and file_size = ? and type = ?",
                f.md5_digest,
                f.file_size,
                f.type,
            )
            for f in SENT_FILES
        ]
    finally:
        telethon.close()
    assert found == [(111, -222), (333, 444)]
    assert states[0] == (STATE.pts, STATE.qts, STATE.date, STATE.seq)
    assert {i: s[0] for i, s in states.items() if i} == {c.channel_id: c.pts for c in CHANNELS}


async def test_an_exported_file_imports_back(store: Store, tmp_path: Path) -> None:
    await fill(store)
    out = tmp_path / "back.session"
    await export_session_file(store, "alice", out, "telethon")
    await import_session_file(store, out, "back")
    original, back = store.account("alice"), store.account("back")
    s1, s2 = await original.session.load(), await back.session.load()
    assert s1 is not None and s2 is not None
    for field in ("dc_id", "server_address", "port", "auth_key", "user_id", "takeout_id", "test_mode"):
        assert getattr(s2, field) == getattr(s1, field)
    # Telethon knows users, chats and channels only, one username each, and display names.
    kinds = {
        PeerType.BOT: PeerType.USER,
        PeerType.SUPERGROUP: PeerType.CHANNEL,
        PeerType.FORUM: PeerType.CHANNEL,
        PeerType.DIRECT: PeerType.CHANNEL,
        PeerType.COMMUNITY: PeerType.CHANNEL,
    }
    expected = [
        (
            i,
            kinds.get(t, t),
            h if h is not None else 0,
            tuple(n.lower() for n in names[:1]),
            phone and "15550101",
        )
        for i, t, h, names, phone in peer_facts(await original.peers.list())
        if i != 103
    ]
    assert peer_facts(await back.peers.list()) == expected
    assert await back.updates.load_state() == STATE
    assert await back.updates.list_channels() == CHANNELS
    assert await back.files.list() == SENT_FILES


async def test_a_missing_address_comes_from_the_dc_table(store: Store, tmp_path: Path) -> None:
    await fill(store, server_address=None, port=None, dc_id=2, test_mode=True)
    result = await export_session_file(store, "alice", tmp_path / "t.session", "telethon")
    assert result.filled_from_dc_table == ("server_address", "port")
    telethon = SQLiteSession(str(tmp_path / "t.session"))
    assert (telethon.dc_id, telethon.server_address, telethon.port) == (2, "149.154.167.40", 80)
    telethon.close()


async def test_refusals_write_no_file(store: Store, tmp_path: Path) -> None:
    tmp_path = tmp_path / "out"  # apart from the SQLite store's own files
    tmp_path.mkdir()
    await fill(store, auth_key=None)
    with pytest.raises(InvalidArgument, match="auth_key"):
        await export_session_file(store, "alice", tmp_path / "nokey.session", "telethon")
    with pytest.raises(SessionNotFound, match="no session named 'nobody'"):
        await export_session_file(store, "nobody", tmp_path / "nobody.session", "telethon")
    with pytest.raises(InvalidArgument, match="format"):
        await export_session_file(store, "alice", tmp_path / "x.session", "madeline")
    assert list(tmp_path.iterdir()) == []


async def test_an_existing_file_is_overwritten_only_when_asked(store: Store, tmp_path: Path) -> None:
    await fill(store)
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    out = tmp_path / "exists.session"
    out.write_text("precious")
    with pytest.raises(InvalidArgument, match="already exists"):
        await export_session_file(store, "alice", out, "telethon")
    assert out.read_text() == "precious"
    await export_session_file(store, "alice", out, "telethon", overwrite=True)
    assert sqlite_rows(out, "select count(*) from entities") == [(9,)]  # 8 peers and "self"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.session"]  # no temporary left behind
