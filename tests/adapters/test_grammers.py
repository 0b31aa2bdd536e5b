"""`GrammersSession` in a grammers venv (Python >= 3.12, `tests.clients.venvs`) against grammers' own
`SqliteSession`, on the database of this test's backend; and the extra named where grammers is missing."""

from __future__ import annotations

import importlib
import importlib.util

import pytest

from tests.clients.venvs import run_in


async def test_same_answers_as_sqlite_session_call_by_call_then_after_reopening(db_url: str) -> None:
    report = run_in("grammers", "tests.clients.grammers_session", db_url)
    assert report == {"calls": 22, "differences": [], "home_mirrored": True, "client_takes_it": True}


@pytest.mark.skipif(importlib.util.find_spec("grammers") is not None, reason="grammers is installed here")
def test_without_grammers_the_import_names_the_extra() -> None:
    with pytest.raises(ImportError, match=r"pip install 'tgpersist\[grammers\]'"):
        importlib.import_module("tgpersist.adapters.grammers")
