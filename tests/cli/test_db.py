"""`tgpersist db upgrade|downgrade|current|check|history`, with --url, --prefix and --schema.

Commands run in-process (in a worker thread, since `main` owns its event loop) except where the exit
status of the real executable is the point. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.cli.run import cli
from tests.test_migrate import (
    FIRST,
    HEAD,
    OUR_TABLES,
    REVISIONS,
    altered_placement,
    run,
    table_names,
    venv_bin,
)
from tgpersist import migrate
from tgpersist.models import Placement


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


async def test_upgrade_current_check_history_downgrade(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    status, out, err = await cli(capsys, "db", "current", "--url", db_url)
    assert (status, out) == (2, "")
    assert one_line(err).endswith("create it with `tgpersist db upgrade`") or "create them with" in err
    assert await cli(capsys, "db", "upgrade", FIRST, "--url", db_url) == (0, f"at {FIRST}\n", "")
    assert await cli(capsys, "db", "current", "--url", db_url) == (0, f"{FIRST}\n", "")
    assert await cli(capsys, "db", "upgrade", "--url", db_url) == (0, f"at {HEAD}\n", "")
    assert await cli(capsys, "db", "current", "--url", db_url) == (0, f"{HEAD} (head)\n", "")
    assert await cli(capsys, "db", "check", "--url", db_url) == (
        0,
        f"ok: schema is at {HEAD} and matches the models\n",
        "",
    )
    status, out, _ = await cli(capsys, "db", "history", "--url", db_url)
    assert status == 0
    assert [line.split(":")[0] for line in out.splitlines()] == REVISIONS
    status, out, err = await cli(capsys, "db", "downgrade", "-1", "--url", db_url, "--yes")
    assert (status, out) == (0, f"at {REVISIONS[1]}\n")
    assert one_line(err) == f"will downgrade {db_url} from {HEAD} to -1, undoing {HEAD}"
    status, out, err = await cli(capsys, "db", "downgrade", "base", "--url", db_url, "--yes")
    assert (status, out) == (0, "at base\n")
    assert one_line(err).endswith(
        "DROPS every tgpersist table, with the 0 sessions and their auth keys in them"
    )
    assert await table_names(db_url) == set()


async def test_check_fails_with_one_clear_line(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    status, out, err = await cli(capsys, "db", "check", "--url", db_url)
    assert (status, out) == (2, "")
    assert one_line(err).startswith("tgpersist: error: no ")
    assert one_line(err).endswith("`tgpersist db upgrade`")
    await cli(capsys, "db", "upgrade", FIRST, "--url", db_url)
    status, out, err = await cli(capsys, "db", "check", "--url", db_url)
    assert (status, out) == (1, "")
    assert one_line(err).startswith(f"tgpersist: error: database schema is at {FIRST}, expected {HEAD}")


async def test_check_fails_when_a_model_changed_without_a_migration(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    placement = altered_placement("add column")
    assert (await cli(capsys, "db", "upgrade", "--url", db_url, "--prefix", placement.prefix))[0] == 0
    status, out, err = await cli(capsys, "db", "check", "--url", db_url, "--prefix", placement.prefix)
    assert (status, out) == (1, "")
    line = one_line(err)
    assert line.startswith(f"tgpersist: error: database schema is at {HEAD}, expected {HEAD}: ")
    assert "the models differ from the database" in line
    assert "add_column" in line
    assert "nickname" in line


async def test_prefix_and_schema_options(
    capsys: pytest.CaptureFixture[str], backend: str, db_url: str
) -> None:
    if backend == "sqlite":
        status, out, err = await cli(capsys, "db", "upgrade", "--url", db_url, "--schema", "telegram")
        assert (status, out) == (1, "")
        assert one_line(err) == "tgpersist: error: a schema placement needs PostgreSQL"
        placed = ["--prefix", "tg_"]
        where = Placement(prefix="tg_")
    else:
        placed = ["--prefix", "tg_", "--schema", "telegram"]
        where = Placement(prefix="tg_", schema="telegram")
    assert await cli(capsys, "db", "upgrade", "--url", db_url, *placed) == (0, f"at {HEAD}\n", "")
    assert await cli(capsys, "db", "current", "--url", db_url, *placed) == (0, f"{HEAD} (head)\n", "")
    assert (await cli(capsys, "db", "check", "--url", db_url, *placed))[0] == 0
    status, out, err = await cli(capsys, "db", "current", "--url", db_url)
    assert (status, out) == (2, "") and "no tgpersist tables (prefix tgpersist_)" in err
    assert await migrate.current(db_url, placement=where) == (HEAD,)
    assert await table_names(db_url, where.schema) == {f"tg_{t}" for t in OUR_TABLES}
    assert (await cli(capsys, "db", "downgrade", "base", "--url", db_url, *placed, "--yes"))[:2] == (
        0,
        "at base\n",
    )
    assert await table_names(db_url, where.schema) == set()


async def test_bad_prefix_is_a_one_line_error(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    status, out, err = await cli(capsys, "db", "upgrade", "--url", db_url, "--prefix", "Bad-Prefix")
    assert (status, out) == (1, "")
    assert one_line(err).startswith("tgpersist: error: prefix: must be")


async def test_url_defaults_to_the_environment(
    capsys: pytest.CaptureFixture[str], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TGPERSIST_URL", db_url)
    assert await cli(capsys, "db", "upgrade") == (0, f"at {HEAD}\n", "")
    assert await migrate.current(db_url) == (HEAD,)


@pytest.mark.parametrize("argv", [("db",), ("db", "downgrade"), ("db", "frobnicate")])
async def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: Sequence[str]) -> None:
    status, out, err = await cli(capsys, *argv)
    assert (status, out) == (2, "")
    assert "usage: tgpersist db" in err


async def test_the_installed_command_exits_non_zero_with_one_stderr_line(db_url: str) -> None:
    tgpersist = venv_bin("tgpersist")
    bad = run(tgpersist, "db", "check", "--url", db_url)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert one_line(bad.stderr).startswith("tgpersist: error: no ")
    assert run(tgpersist, "db", "upgrade", "--url", db_url).returncode == 0
    good = run(tgpersist, "db", "check", "--url", db_url)
    assert (good.returncode, good.stderr) == (0, "")
