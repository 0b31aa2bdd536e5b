"""`GrammersSession` in a grammers venv (Python >= 3.12, `tests.clients.venvs`) against grammers' own
`SqliteSession`, on the database of this test's backend; and the extra named where grammers is missing."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest

from tests.clients.venvs import run_in


async def test_same_answers_as_sqlite_session_call_by_call_then_after_reopening(db_url: str) -> None:
    report = run_in("grammers", "tests.clients.grammers_session", db_url)
    assert report == {
        "calls": 22,
        "differences": [],
        "home_mirrored": True,
        "client_takes_it": True,
        "busy": True,  # a second owner is refused while the first holds the lease
    }


async def test_a_lost_lease_drops_the_keys_from_memory_and_refuses_writes(db_url: str) -> None:
    await test_same_answers_as_sqlite_session_call_by_call_then_after_reopening(db_url)  # stores keys
    report = run_in("grammers", "tests.clients.grammers_session", db_url, "lost")
    assert report == {
        "had_key": True,
        "logged": True,  # at ERROR, naming the owner
        "key_not_logged": True,
        "keys_dropped": [None, None, None],
        "refused": True,
        "unchanged": True,
    }


@pytest.mark.skipif(importlib.util.find_spec("grammers") is not None, reason="grammers is installed here")
def test_without_grammers_the_import_names_the_extra() -> None:
    with pytest.raises(ImportError, match=r"pip install 'tgpersist\[grammers\]'"):
        importlib.import_module("tgpersist.adapters.grammers")


async def test_grammers_files_import_export_and_open_in_grammers(db_url: str, tmp_path: Path) -> None:
    """`tgpersist import` reads a file `SqliteSession` wrote; `export --format grammers` writes one that
    `SqliteSession` reads back identically; the adapter answers the same for the imported account."""
    report = run_in("grammers", "tests.clients.grammers_files", db_url, str(tmp_path))
    assert report == {
        "imported": "imported g from grammers file (schema 1): 4 peers, 1 channel states, update state",
        "exported_reads_back": True,
        "adapter_reads_it": True,
        "peers": [True, True, True, True, False, True],  # the broadcast channel: SqliteSession's bug
        "channel": True,
        "session": [4, True, 42, False],
    }
