"""`tgpersist session export|import`, `tgpersist import FILE`, `tgpersist export NAME`, on SQLite and
PostgreSQL. Commands run in-process, in a worker thread (`main` owns its event loop); one runs as a
real process to show that errors print one line and no traceback."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path

import pytest
from pyrogram.storage import SQLiteStorage
from telethon.sessions import SQLiteSession, StringSession

import tgpersist
from tests.cli.run import cli
from tests.importers.clients import AUTH_KEY, TELETHON_PEERS, USER_ID, make_telethon_file, peer_facts
from tests.leakcheck import key_forms, leaks
from tgpersist import Peer, PeerType, Session, session_strings


def one_error_line(err: str, text: str) -> None:
    assert err.count("\n") == 1 and err.startswith("tgpersist: error: ") and "Traceback" not in err, err
    assert text in err, err


async def test_import_a_file_then_refuse_then_replace(
    capsys: pytest.CaptureFixture[str], db_url: str, tmp_path: Path
) -> None:
    path = make_telethon_file(tmp_path / "alice")
    status, out, err = await cli(capsys, "import", str(path), "--url", db_url)
    assert (status, err) == (0, "")
    assert out == (
        "imported alice from telethon file (schema 8): "
        "6 peers, 1 channel states, update state, 2 sent files\n"
    )
    status, out, err = await cli(capsys, "import", str(path), "--name", "alice", "--url", db_url)
    assert (status, out) == (1, "")
    one_error_line(err, "a session named 'alice' already exists (pass --replace)")
    status, out, _ = await cli(capsys, "import", str(path), "--name", "alice", "--replace", "--url", db_url)
    assert status == 0 and out.startswith("replaced alice from telethon file")
    async with await tgpersist.open_store(db_url) as store:
        assert peer_facts(await store.account("alice").peers.list()) == TELETHON_PEERS


async def test_import_shows_progress_when_asked(
    capsys: pytest.CaptureFixture[str], db_url: str, tmp_path: Path
) -> None:
    path = make_telethon_file(tmp_path / "p")
    status, _, err = await cli(capsys, "import", str(path), "--name", "p", "--url", db_url)
    assert (status, err) == (0, "")  # stderr is not a terminal here: no bar
    status, _, err = await cli(capsys, "import", str(path), "--name", "q", "--progress", "--url", db_url)
    assert status == 0
    first, *_, last = err.splitlines()  # not a terminal: plain lines, each with its rate and ETA
    assert first.startswith("peers: 0/6   0% ") and " ETA " in first
    assert last.startswith("peers: 6/6 100% ") and last.endswith("/s ETA 0s")
    out_file = tmp_path / "back.session"
    status, _, err = await cli(
        capsys, "export", "p", "--format", "telethon", "--out", str(out_file), "--progress", "--url", db_url
    )
    assert status == 0 and out_file.exists()
    lines = [line for line in err.splitlines() if line.startswith("peers: ")]
    assert lines[0].startswith("peers: 0/6   0% ") and lines[-1].startswith("peers: 6/6 100% ")


@pytest.mark.parametrize(
    ("content", "problem"), [(None, "no such file"), ("hello", "not an SQLite database")]
)
async def test_import_of_a_bad_file_is_one_line(
    capsys: pytest.CaptureFixture[str], db_url: str, tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "x.session"
    if content is not None:
        path.write_text(content)
    status, out, err = await cli(capsys, "import", str(path), "--name", "x", "--url", db_url)
    assert (status, out) == (1, "")
    one_error_line(err, problem)


async def test_session_export_prints_the_secret_on_stdout_only(
    capsys: pytest.CaptureFixture[str], db_url: str, tmp_path: Path
) -> None:
    await cli(capsys, "import", str(make_telethon_file(tmp_path / "alice")), "--url", db_url)
    status, out, err = await cli(
        capsys, "session", "export", "alice", "--format", "telethon", "--url", db_url
    )
    assert status == 0
    text = out.removesuffix("\n")
    assert out == text + "\n" and "\n" not in text
    loaded = StringSession(text)
    assert (loaded.dc_id, loaded.server_address, loaded.port, loaded.auth_key.key) == (
        4,
        "149.154.167.91",
        443,
        AUTH_KEY,
    )
    assert err.startswith("warning: this session string is a login")
    assert text not in err and leaks(err, key_forms(AUTH_KEY)) == []

    # `session show` and the other commands never print it
    status, shown, err = await cli(capsys, "session", "show", "alice", "--url", db_url)
    assert status == 0 and leaks(shown + err, key_forms(AUTH_KEY)) == []


async def test_session_export_pyrogram_needs_an_api_id(
    capsys: pytest.CaptureFixture[str], db_url: str, tmp_path: Path
) -> None:
    await cli(capsys, "import", str(make_telethon_file(tmp_path / "alice")), "--url", db_url)
    argv = ("session", "export", "alice", "--format", "pyrogram", "--url", db_url)
    status, out, err = await cli(capsys, *argv)
    assert (status, out) == (1, "")
    one_error_line(err, "api_id: is unknown, and Pyrogram session strings need it (pass --api-id)")
    status, out, err = await cli(capsys, *argv, "--api-id", "4242")
    assert status == 0
    assert "note: is_bot unknown, written as False" in err and leaks(err, key_forms(AUTH_KEY)) == []
    storage = SQLiteStorage("s", workdir=tmp_path, session_string=out.strip(), in_memory=True)
    await storage.open()
    values = [
        await storage.dc_id(),
        await storage.api_id(),
        await storage.auth_key(),
        await storage.user_id(),
    ]
    await storage.close()
    assert values == [4, 4242, AUTH_KEY, USER_ID]


async def test_session_import_from_an_argument_or_stdin(
    capsys: pytest.CaptureFixture[str], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = tgpersist.Session(name="x", dc_id=1, api_id=7, auth_key=AUTH_KEY, user_id=9, is_bot=True)
    text = session_strings.encode_pyrogram(session)
    status, out, err = await cli(capsys, "session", "import", text, "--name", "bot", "--url", db_url)
    assert status == 0 and out == "imported bot from pyrogram string: 0 peers, 0 channel states\n"
    assert err == "note: server_address, port taken from the DC table\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(text + "\n"))
    status, out, _ = await cli(capsys, "session", "import", "-", "--name", "piped", "--url", db_url)
    assert status == 0 and out.startswith("imported piped")
    async with await tgpersist.open_store(db_url) as store:
        for name in ("bot", "piped"):
            stored = await store.account(name).session.load()
            assert stored is not None
            assert (stored.dc_id, stored.api_id, stored.auth_key, stored.user_id, stored.is_bot) == (
                1,
                7,
                AUTH_KEY,
                9,
                True,
            )
    status, out, err = await cli(capsys, "session", "import", text[:-3], "--name", "broken", "--url", db_url)
    assert (status, out) == (1, "")
    one_error_line(err, "characters long")
    assert text[:-3] not in err


async def test_export_writes_a_file_the_client_opens(
    capsys: pytest.CaptureFixture[str], db_url: str, tmp_path: Path
) -> None:
    await cli(capsys, "import", str(make_telethon_file(tmp_path / "alice")), "--url", db_url)
    out_file = tmp_path / "out" / "alice.session"
    out_file.parent.mkdir()
    argv = ("export", "alice", "--format", "telethon", "--out", str(out_file), "--url", db_url)
    status, out, err = await cli(capsys, *argv)
    assert status == 0 and out == f"wrote {out_file} (telethon): 6 peers\n"
    assert err == "warning: the file holds the account's auth key: keep it secret\n"
    telethon = SQLiteSession(str(out_file))
    assert (telethon.dc_id, telethon.auth_key.key) == (4, AUTH_KEY)
    telethon.close()
    status, out, err = await cli(capsys, *argv)
    assert (status, out) == (1, "")
    one_error_line(err, "already exists (pass --force to overwrite it)")
    assert (await cli(capsys, *argv, "--force"))[0] == 0
    status, _, err = await cli(
        capsys, "export", "nobody", "--format", "pyrogram", "--out", str(tmp_path / "n"), "--url", db_url
    )
    assert status == 1
    one_error_line(err, "no session named 'nobody'")


async def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    status, _, err = await cli(capsys, "export", "alice", "--out", "x", "--url", db_url)
    assert status == 2 and "--format" in err
    status, _, err = await cli(capsys, "session", "export", "alice", "--format", "json", "--url", db_url)
    assert status == 2 and "invalid choice" in err


async def test_a_real_process_prints_one_line_and_no_traceback(db_url: str) -> None:
    def run() -> subprocess.CompletedProcess[str]:
        argv = [
            sys.executable,
            "-m",
            "tgpersist.cli",
            "session",
            "import",
            "not-a-session",
            "--name",
            "x",
            "--url",
            db_url,
        ]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    done = await asyncio.to_thread(run)
    assert (done.returncode, done.stdout) == (1, "")
    one_error_line(done.stderr, "this one has 13")


async def test_export_reports_progress_page_by_page(
    capsys: pytest.CaptureFixture[str], db_url: str, tmp_path: Path
) -> None:
    """The peers are read in pages of 5,000, so a long export shows its count, rate and ETA as it goes."""
    async with await tgpersist.open_store(db_url) as store:
        account = store.account("big")
        await account.session.save(Session("big", dc_id=2, auth_key=bytes(range(256))))
        await account.peers.save_many(
            [Peer(i, PeerType.USER, access_hash=i, username=f"u{i}") for i in range(1, 12_001)]
        )
        pages = [len(page) async for page in account.peers.pages(5000)]
        assert pages == [5000, 5000, 2000]
        paged = [peer async for page in account.peers.pages(7) for peer in page]
        assert paged == await account.peers.list()
    out_file = tmp_path / "big.session"
    status, _, err = await cli(
        capsys, "export", "big", "--format", "telethon", "--out", str(out_file), "--progress", "--url", db_url
    )
    assert status == 0, err
    counts = [line.split()[1] for line in err.splitlines() if line.startswith("peers: ")]
    assert counts[:4] == ["0/12000", "5000/12000", "10000/12000", "12000/12000"]
