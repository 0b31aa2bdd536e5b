"""`WriteBehind`, the queue the adapters write through: order, merging, retries, lost leases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tgpersist import LeaseLost
from tgpersist.adapters import _write_behind
from tgpersist.adapters._write_behind import Batch, WriteBehind


class Recorder:
    """Apply functions that log what they were given, and fail on demand."""

    def __init__(self) -> None:
        self.log: list[tuple[str, list[Any]]] = []
        self.failures: list[BaseException] = []

    def kind(self, name: str) -> Any:
        async def apply(items: list[Any]) -> None:
            if self.failures:
                raise self.failures.pop(0)
            self.log.append((name, items))

        return apply


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_write_behind, "FIRST_RETRY", 0.001)


async def test_writes_are_applied_in_order_and_neighbours_of_one_kind_merge() -> None:
    rec = Recorder()
    peers, state, delete = rec.kind("peers"), rec.kind("state"), rec.kind("delete")
    writer = WriteBehind("test")
    writer.submit(Batch("peers", peers, {1: "a", 2: "b"}))
    writer.submit(Batch("peers", peers, {1: "a2", 3: "c"}))
    writer.submit(Batch("state", state, {0: "s1"}))
    writer.submit(Batch("delete", delete, {"x": "gone"}, barrier=True))
    writer.submit(Batch("delete", delete, {"x": "gone again"}, barrier=True))
    writer.submit(Batch("peers", peers, {4: "d"}))
    assert writer.pending == 6
    await writer.flush()
    assert writer.pending == 0
    assert rec.log == [
        ("peers", ["b", "a2", "c"]),
        ("state", ["s1"]),
        ("delete", ["gone"]),
        ("delete", ["gone again"]),
        ("peers", ["d"]),
    ]
    await writer.flush()  # nothing pending: returns at once


async def test_a_failed_write_stays_first_and_is_retried() -> None:
    rec = Recorder()
    writer = WriteBehind("test")
    rec.failures.append(ConnectionError("down"))
    writer.submit(Batch("a", rec.kind("a"), {1: 1}))
    writer.submit(Batch("b", rec.kind("b"), {1: 2}))
    with pytest.raises(ConnectionError):
        await writer.flush()
    assert writer.pending == 2
    await writer.flush()
    assert rec.log == [("a", [1]), ("b", [2])]


async def test_a_lost_lease_stops_the_writer_for_good() -> None:
    rec = Recorder()
    writer = WriteBehind("test")
    rec.failures.append(LeaseLost("acct", 3))
    writer.submit(Batch("a", rec.kind("a"), {1: 1}))
    with pytest.raises(LeaseLost):
        await writer.flush()
    writer.submit(Batch("b", rec.kind("b"), {1: 2}))
    with pytest.raises(LeaseLost):
        await writer.flush()
    assert isinstance(writer.failed, LeaseLost)
    assert writer.pending == 2 and rec.log == []


async def test_the_guard_runs_before_every_write() -> None:
    rec = Recorder()
    allowed = [True]

    def guard() -> None:
        if not allowed[0]:
            raise LeaseLost("acct", 1)

    writer = WriteBehind("test", guard)
    writer.submit(Batch("a", rec.kind("a"), {1: 1}))
    await writer.flush()
    allowed[0] = False
    writer.submit(Batch("a", rec.kind("a"), {1: 2}))
    with pytest.raises(LeaseLost):
        await writer.flush()
    assert rec.log == [("a", [1])]


async def test_discard_drops_what_is_queued() -> None:
    rec = Recorder()
    writer = WriteBehind("test")
    writer.submit(Batch("a", rec.kind("a"), {1: 1}))
    writer.submit(Batch("b", rec.kind("b"), {1: 2}))
    assert writer.discard() == 2
    assert writer.pending == 0
    await writer.flush()
    await asyncio.sleep(0)
    assert rec.log == []


def test_writes_queued_outside_a_running_loop_are_stored_by_the_next_flush() -> None:
    rec = Recorder()
    writer = WriteBehind("test")
    writer.submit(Batch("a", rec.kind("a"), {1: 1}))
    assert writer.pending == 1 and not writer.writing
    asyncio.run(writer.flush())
    assert rec.log == [("a", [1])] and writer.pending == 0
