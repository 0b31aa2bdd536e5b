"""Pyrofork and Hydrogram, each in its own venv (`tests.clients.venvs`), against their own storage.

The differential scripts (`tests.clients.pyrogram_forks`, `tests.clients.fork_clients`) run in the
client's venv on the database of this test's backend and report every difference they find.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.venvs import run_in

FORKS = ["pyrofork", "hydrogram"]


@pytest.mark.parametrize("fork", FORKS)
async def test_same_results_as_the_forks_own_storage_call_by_call(fork: str, db_url: str) -> None:
    report = run_in(fork, "tests.clients.pyrogram_forks", fork, db_url)
    assert report["differences"] == []
    assert report["calls"] == (30 if fork == "pyrofork" else 16)


@pytest.mark.parametrize("fork", FORKS)
async def test_the_forks_client_takes_the_storage_and_its_files_import(
    fork: str, db_url: str, tmp_path: Path
) -> None:
    report = run_in(fork, "tests.clients.fork_clients", fork, db_url, str(tmp_path))
    channel_names = ["news", "news_two"] if fork == "pyrofork" else ["news"]
    assert report.pop("file") == {
        "exit": 0,
        "session": [4, 12345, True, 42],
        "peers": {"-1000000000011": [4, channel_names, None], "42": [1, ["alice"], "15550042"]},
        "state": [7, 100] if fork == "pyrofork" else None,
        "channels": [[11, 9]] if fork == "pyrofork" else [],
    }
    assert report == {
        "uses_our_storage": True,
        "session_string_matches": True,
        "resolved": ["InputPeerUser(42, 1)", "InputPeerChannel(11, 4)"],
        "lease_released": True,
        "invalid": ["InvalidArgument:dc_id", "InvalidArgument:type", "InvalidArgument:id"]
        + (["InvalidArgument:id", "InvalidArgument:usernames"] if fork == "pyrofork" else []),
    }


def test_the_original_pyrogram_is_refused_with_one_clear_error() -> None:
    report = run_in("pyrogram", "tests.clients.unsupported_pyrogram")
    assert report["error"] == "ImportError"
    message = str(report["message"])
    assert message.startswith("tgpersist.adapters.pyrogram cannot serve Pyrogram 2.0.106")
    for name in ("Kurigram", "Pyrofork", "HydrogramStorage"):
        assert name in message
    assert report["chained"] is False
