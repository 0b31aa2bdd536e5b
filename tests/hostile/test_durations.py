"""Hostile durations for every call that takes one: a typed error naming the field, or success;
never `ValueError`/`OverflowError` from datetime arithmetic, and nothing stored by a rejected call."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.hostile.support import attempt, duration_ok, hostile_durations, unchanged_unless_accepted
from tgpersist import DurableUpdate, InvalidArgument, Store
from tgpersist.repositories.lease import MIN_TTL
from tgpersist.repositories.queue import QueuePolicy


def _seconds(value: Any) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def fresh() -> str:
    return f"d-{uuid.uuid4().hex[:12]}"


def rejected_for(result: Any, field: str, value: Any, *, zero: bool = False) -> bool:
    """True if the call was rejected; asserts it was rejected exactly when the value is invalid."""
    if isinstance(result, InvalidArgument):
        assert result.field == field
        assert not duration_ok(value, zero=zero), f"{value!r} was valid"
        return True
    assert not isinstance(result, Exception), repr(result)
    assert duration_ok(value, zero=zero), f"{value!r} was accepted"
    return False


@settings()
@given(ttl=hostile_durations)
@example(ttl=1e12)
@example(ttl=float("nan"))
async def test_remember_ttl(store: Store, ttl: Any) -> None:
    account = store.account(fresh())
    result = await unchanged_unless_accepted(store, account.updates.remember("msg:1", ttl))
    if not rejected_for(result, "ttl", ttl):
        assert result is True
        if ttl is None or (duration_ok(ttl) and _seconds(ttl) >= 3600):  # a shorter one may lapse already
            assert await account.updates.seen("msg:1") is True


@settings()
@given(delay=hostile_durations)
@example(delay=float("inf"))
async def test_enqueue_delay(store: Store, delay: Any) -> None:
    account = store.account(fresh())
    result = await unchanged_unless_accepted(
        store, account.updates.enqueue(DurableUpdate(b"p", id="u"), delay=delay)
    )
    if not rejected_for(result, "delay", delay, zero=True):
        assert result is True
        stored = await account.updates.get("u")
        assert stored is not None and stored.payload == b"p"


@settings()
@given(lease=hostile_durations, which=st.sampled_from(["claim", "extend_lease", "fail"]))
@example(lease=1e12, which="claim")
@example(lease=float("-inf"), which="extend_lease")
@example(lease=10**400, which="fail")
async def test_queue_leases_and_retry_delays(store: Store, lease: Any, which: str) -> None:
    account = store.account(fresh())
    await account.updates.enqueue(DurableUpdate(b"p", id="u"))
    if which == "claim":
        result = await unchanged_unless_accepted(store, account.updates.claim(1, lease=lease, owner="w"))
        if not rejected_for(result, "lease", lease):
            assert [u.id for u in result] == ["u"]  # type: ignore[union-attr]
        return
    assert [u.id for u in await account.updates.claim(1, owner="w")] == ["u"]
    if which == "extend_lease":
        call = account.updates.extend_lease("u", owner="w", lease=lease)
        field, zero = "lease", False
    else:
        call = account.updates.fail("u", "boom", retry_in=lease, owner="w")
        field, zero = "retry_in", True
    result = await unchanged_unless_accepted(store, call)
    if not rejected_for(result, field, lease, zero=zero):
        assert result is True


@settings()
@given(ttl=hostile_durations, field=st.sampled_from(["ttl", "heartbeat", "timeout"]))
@example(ttl=1e12, field="ttl")
@example(ttl=1e-300, field="ttl")
@example(ttl=float("nan"), field="heartbeat")
async def test_lease_durations(store: Store, ttl: Any, field: str) -> None:
    account = store.account(fresh())
    await account.session.acquire(owner="first", ttl=30)  # so that timeout= has something to wait for
    other = store.account(account.name)
    arguments: dict[str, Any] = {"owner": "second", "ttl": 600.0, "heartbeat": 0}
    arguments[field] = ttl
    if field == "timeout":
        arguments["wait"] = False
    result = await attempt(other.session.acquire(**arguments))
    zero = default = field != "ttl"  # heartbeat and timeout may be 0 or None; ttl neither
    if isinstance(result, InvalidArgument):
        assert result.field == field
        too_long = (
            field == "heartbeat" and ttl is not None and duration_ok(ttl, zero=True) and _seconds(ttl) >= 600
        )
        too_short = field == "ttl" and duration_ok(ttl, default=False) and _seconds(ttl) < MIN_TTL
        # heartbeat must be < ttl; ttl at least MIN_TTL
        assert too_long or too_short or not duration_ok(ttl, zero=zero, default=default)
    else:
        assert duration_ok(ttl, zero=zero, default=default), f"{ttl!r} was accepted"
        assert not (field == "ttl" and _seconds(ttl) < MIN_TTL), f"{ttl!r} was accepted"
        assert type(result).__name__ == "SessionBusy"  # the first owner still holds it
    holder = await account.session.holder()
    assert holder is not None and holder.owner == "first"


@given(value=hostile_durations, field=st.sampled_from(["lease", "base_delay", "max_delay"]))
def test_queue_policy(value: Any, field: str) -> None:
    try:
        QueuePolicy(**{field: value})
    except InvalidArgument as error:
        assert error.field == field
        assert not duration_ok(value, default=False)
    else:
        assert duration_ok(value, default=False)
