"""What every hostile-input property asserts, and the hostile values it draws from.

`attempt` runs one call under a time limit: it succeeds, or raises a `TgPersistError` (then the
database must hold exactly what it held before); any other exception or a hang fails the test.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from sqlalchemy import select

from tgpersist import Store, TgPersistError

T = TypeVar("T")

#: No single call may take longer than this (it would be a hang, not a slow database).
CALL_LIMIT = 60.0


async def contents(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every tgpersist table, in a stable order."""
    tables = sorted(store.models.metadata.tables.values(), key=lambda t: t.name)
    found: dict[str, list[tuple[Any, ...]]] = {}
    async with store.engine.connect() as conn:
        for table in tables:
            rows = await conn.execute(select(table))
            found[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return found


async def attempt(call: Awaitable[T]) -> T | TgPersistError:
    """The call's result, or the typed error it raised (recorded as a hypothesis event)."""
    try:
        result = await asyncio.wait_for(call, CALL_LIMIT)
    except TgPersistError as error:
        _note(f"rejected: {type(error).__name__}")
        return error
    _note("accepted")
    return result


def _note(outcome: str) -> None:
    if currently_in_test_context():  # hypothesis statistics; plain tests use these helpers too
        event(outcome)


async def unchanged_unless_accepted(store: Store, call: Awaitable[T]) -> T | TgPersistError:
    """`attempt(call)`, asserting that a rejected call left every table as it was."""
    before = await contents(store)
    result = await attempt(call)
    if isinstance(result, TgPersistError):
        assert await contents(store) == before, f"{result!r} changed stored data"
    return result


INT_EDGES = [
    0,
    1,
    -1,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**40,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    10**30,
]
#: Where an integer belongs: ints around every column's limits, and things that are not ints.
hostile_ints: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(INT_EDGES),
    st.integers(),
    st.sampled_from([True, False, None, 1.5, math.nan, math.inf, "1", b"1", [1]]),
)

#: Where a duration belongs: every float (NaN, infinities, denormals, huge), ints, timedeltas.
hostile_durations: st.SearchStrategy[Any] = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e12, 1e300, -1e-300, 5e-324, 0, 0.0, -0.0, 10**400, 315_360_000, 315_360_001]),
    st.integers(),
    st.timedeltas(),
    st.sampled_from([timedelta.max, timedelta.min, timedelta(0), True, None, "30", b"\x00"]),
)

_ZONES = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)), timezone(timedelta(minutes=1))]
)
#: Where a timestamp belongs: any datetime in any zone (the extremes overflow when converted).
hostile_datetimes: st.SearchStrategy[Any] = st.one_of(
    st.datetimes(timezones=_ZONES),
    st.sampled_from([datetime.max, datetime.min]).flatmap(
        lambda edge: _ZONES.map(lambda zone: edge.replace(tzinfo=zone))
    ),
    st.sampled_from([0, 1.5, "2024-01-01"]),
)


def nested(depth: int, leaf: Any = 1, *, as_dict: bool = False) -> Any:
    """Data nested `depth` levels deep, built without recursion."""
    value = leaf
    for _ in range(depth):
        value = {"k": value} if as_dict else [value]
    return value


#: How deep to nest data (built inside the test: hypothesis itself cannot print such data).
hostile_depths: st.SearchStrategy[int] = st.one_of(
    st.integers(0, 100_000), st.sampled_from([63, 64, 65, 1000, 100_000])
)

#: Where JSON-able data belongs: wide data, values json cannot encode.
hostile_json: st.SearchStrategy[Any] = st.one_of(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
        max_leaves=30,
    ),
    st.sampled_from(
        [
            [0] * 100_001,
            "x" * (1024 * 1024 + 1),
            {1.5: "float key"},
            {(1, 2): "tuple key"},
            {b"k": 1},
            10**5000,
            {1, 2},
            object(),
            b"\x00" * 10,
        ]
    ),
)


def duration_ok(value: Any, *, zero: bool = False, default: bool = True) -> bool:
    """What `validation.check_seconds` accepts: a finite number of seconds (or timedelta), positive
    (or zero where allowed), at most ten years; None where the argument has a `default`."""
    if value is None:
        return default
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, int | float):
        return False
    else:
        try:
            seconds = float(value)
        except OverflowError:
            return False
    if not math.isfinite(seconds):
        return False
    return (seconds >= 0 if zero else seconds > 0) and seconds <= MAX_SECONDS


MAX_SECONDS = 10 * 365 * 24 * 3600
