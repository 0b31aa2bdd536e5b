"""Read-only commands never create anything; destructive ones show their plan and ask on a terminal,
refuse without one unless `--yes`. On SQLite (a missing file) and PostgreSQL (an empty database)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

import tgpersist
from tests.cli.accounts import populate
from tests.cli.run import PROMPT, cli, on_terminal
from tests.test_migrate import on_db, table_names
from tgpersist.cli.common import EXIT_CODES
from tgpersist.encryption import EncryptionKey

KEY = EncryptionKey.generate().export()
# Keys go as `--key=KEY` here; tests/cli/test_keys.py covers a key as the next argument, "-" first.

#: Every command that must not create a database: reads, and writes that only change existing rows.
NEVER_CREATE = [
    ("sessions", "list"),
    ("sessions", "list", "--json"),
    ("leases",),
    ("session", "show", "alice"),
    ("session", "export", "alice", "--format", "telethon"),
    ("export", "alice", "--format", "telethon", "--out", "{tmp}/out.session"),
    ("db", "current"),
    ("db", "check"),
    ("keys", "status"),
    ("queue", "stats"),
    ("queue", "dead", "alice"),
    ("queue", "requeue", "alice", "--all"),
    ("queue", "purge", "alice", "--dead", "--yes"),
    ("session", "delete", "alice", "--yes"),
    ("db", "downgrade", "base", "--yes"),
    ("keys", "encrypt", f"--key={KEY}", "--yes"),
    ("keys", "decrypt", f"--key={KEY}", "--yes"),
    ("keys", "rotate", f"--old={KEY}", f"--new={KEY}", "--yes"),
]


def sqlite_path(url: str) -> Path:
    return Path(sa.engine.make_url(url).database or "")


async def schemas(url: str) -> set[str]:
    return set(await on_db(url, lambda conn: sa.inspect(conn).get_schema_names()))


@pytest.mark.parametrize("argv", NEVER_CREATE, ids=lambda a: " ".join(a[:3]))
async def test_a_missing_database_is_exit_2_and_nothing_is_created(
    capsys: pytest.CaptureFixture[str], backend: str, db_url: str, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    args = [a.format(tmp=tmp_path) for a in argv]
    placed = ["--schema", "telegram"] if backend == "postgresql" else []
    status, out, err = await cli(capsys, *args, "--url", db_url, *placed)
    assert (status, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith("tgpersist: error: no ") and line.endswith("`tgpersist db upgrade`")
    if backend == "sqlite":
        path = sqlite_path(db_url)
        assert str(path) in line
        assert not path.exists() and not list(path.parent.glob(path.name + "*"))
    else:
        assert "in schema telegram" in line
        assert "telegram" not in await schemas(db_url)
        assert await table_names(db_url) == set()
    assert not (tmp_path / "out.session").exists()


async def test_an_empty_sqlite_file_is_exit_2_and_stays_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    url = f"sqlite+aiosqlite:///{path}"
    status, _, err = await cli(capsys, "sessions", "list", "--url", url)
    assert status == 2 and "no tgpersist tables (prefix tgpersist_)" in err
    assert await table_names(url) == set()


DESTRUCTIVE = [
    (("session", "delete", "alice"), "will delete session 'alice' and every row scoped to it"),
    (("queue", "purge", "alice", "--dead"), "will delete the 1 dead letters of alice"),
    (("queue", "purge", "alice", "--all"), "will delete all 5 queued updates of alice"),
    (("db", "downgrade", "base"), "this DROPS every tgpersist table, with the 2 sessions"),
    (("keys", "encrypt", f"--key={KEY}"), "will encrypt (with key id"),
]


@pytest.mark.parametrize(("argv", "plan"), DESTRUCTIVE, ids=lambda a: " ".join(a[:3]))
async def test_without_a_terminal_destructive_commands_refuse_unless_yes(
    capsys: pytest.CaptureFixture[str], db_url: str, argv: tuple[str, ...], plan: str
) -> None:
    await populate(db_url)
    before = await dump(db_url)
    status, out, err = await cli(capsys, *argv, "--url", db_url)
    assert (status, out) == (3, "")
    shown, refusal = err.splitlines()
    assert plan in shown
    assert refusal == "tgpersist: error: refusing without confirmation: no terminal to ask on (pass --yes)"
    assert await dump(db_url) == before

    status, out, err = await cli(capsys, *argv, "--url", db_url, "--yes")
    assert status == 0, err
    assert plan in err
    assert await dump(db_url) != before


async def dump(url: str) -> dict[str, int]:
    """Rows per tgpersist table (empty once the tables are gone), and the encrypted key count."""

    def read(conn: sa.Connection) -> dict[str, int]:
        found = {}
        for name in sa.inspect(conn).get_table_names():
            table = sa.table(name)
            found[name] = int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
        if "tgpersist_sessions" in found:
            found["encrypted"] = int(
                conn.execute(
                    sa.text("SELECT count(*) FROM tgpersist_sessions WHERE auth_key_id IS NOT NULL")
                ).scalar_one()
            )
        return found

    return await on_db(url, read)


async def test_on_a_terminal_the_plan_is_shown_and_only_yes_goes_ahead(db_url: str) -> None:
    await populate(db_url)
    status, screen, asked = await on_terminal("session", "delete", "alice", "--url", db_url, answer="n")
    assert (status, asked) == (3, True)
    assert "will delete session 'alice' and every row scoped to it: its auth keys, 3 peers" in screen
    assert screen.endswith("tgpersist: error: not confirmed: nothing was changed\n")
    async with await tgpersist.open_store(db_url) as store:
        assert await store.list_sessions() == ["alice", "bob"]

    status, screen, asked = await on_terminal("session", "delete", "alice", "--url", db_url, answer="y")
    assert (status, asked) == (0, True)
    assert screen.endswith(PROMPT.decode() + "y\ndeleted alice\n")
    async with await tgpersist.open_store(db_url) as store:
        assert await store.list_sessions() == ["bob"]

    status, screen, asked = await on_terminal("db", "downgrade", "base", "--url", db_url, "--yes")
    assert (status, asked) == (0, False)  # --yes: no question even on a terminal
    assert screen.endswith("at base\n")


async def test_help_documents_the_exit_codes_and_version_is_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = await cli(capsys, "--help")
    assert status == 0 and EXIT_CODES in out
    status, out, _ = await cli(capsys, "queue", "purge", "--help")
    assert status == 0 and "3    a destructive command was not confirmed" in out
    assert await cli(capsys, "--version") == (0, f"tgpersist {tgpersist.__version__}\n", "")


@pytest.mark.parametrize(("argv", "plan"), DESTRUCTIVE, ids=lambda a: " ".join(a[:3]))
async def test_on_a_terminal_every_destructive_command_asks(
    db_url: str, argv: tuple[str, ...], plan: str
) -> None:
    await populate(db_url)
    before = await dump(db_url)
    status, screen, asked = await on_terminal(*argv, "--url", db_url, answer="no")
    assert (status, asked) == (3, True)
    assert plan in screen and screen.endswith("not confirmed: nothing was changed\n")
    assert await dump(db_url) == before
