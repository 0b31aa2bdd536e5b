"""`BulkUpsert` on its own: every NULL shape, shared values, the stable-column fast path, and
batches over several statements (SQLite) or through COPY (PostgreSQL), on a scratch table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import tgpersist
from tgpersist.sql.bulk import BulkUpsert, retry_point

metadata = sa.MetaData()
items = sa.Table(
    "scratch_items",
    metadata,
    sa.Column("owner", sa.String(20), primary_key=True),
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("a", sa.String(20)),
    sa.Column("b", sa.BigInteger),
    sa.Column("key", sa.String(20)),
    sa.Column("stamp", sa.String(20)),
    sa.Index("scratch_items_key_ix", "owner", "key", unique=True),
)
COLUMNS = ("id", "a", "b", "key")
SHARED = ("owner", "stamp")


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = tgpersist.create_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


def upsert(engine: AsyncEngine, *, stable: tuple[str, ...] = ()) -> BulkUpsert:
    return BulkUpsert(
        items, engine.dialect, COLUMNS, ("owner", "id"), (*COLUMNS[1:], "stamp"), shared=SHARED, stable=stable
    )


async def write(engine: AsyncEngine, bulk: BulkUpsert, rows: list[tuple[Any, ...]], stamp: str) -> None:
    async with engine.begin() as conn:
        await bulk.execute(conn, rows, ("o", stamp))


async def stored(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        query = sa.select(items.c.id, items.c.a, items.c.b, items.c.key, items.c.stamp).order_by(items.c.id)
        return [tuple(row) for row in await conn.execute(query)]


def rows_of_every_shape(count: int, generation: int) -> list[tuple[Any, ...]]:
    """Rows cycling through every combination of empty columns, among them rows with one value only."""
    out = []
    for i in range(1, count + 1):
        a = None if i % 2 else f"a{i}.{generation}"
        b = None if i % 3 == 0 else i * 10 + generation
        key = None if i % 4 == 0 else f"k{i}"
        out.append((i, a, b, key))
    return out


@pytest.mark.parametrize("stable", [(), ("key",)])
async def test_rows_of_every_shape_round_trip_over_several_statements(
    engine: AsyncEngine, stable: tuple[str, ...]
) -> None:
    bulk = upsert(engine, stable=stable)
    count = BulkUpsert.COPY_ROWS + 7  # several SQLite statements; COPY on PostgreSQL
    first = rows_of_every_shape(count, 0)
    await write(engine, bulk, first, "t0")
    assert await stored(engine) == [(*row, "t0") for row in first]

    second = rows_of_every_shape(count, 1)  # other values; the same keys: the stable fast path holds
    await write(engine, bulk, second, "t1")
    assert await stored(engine) == [(*row, "t1") for row in second]


async def test_a_changed_stable_column_is_written(engine: AsyncEngine) -> None:
    bulk = upsert(engine, stable=("key",))
    rows = [(i, "x", i, f"k{i}") for i in range(1, 501)]
    await write(engine, bulk, rows, "t0")
    rows[250] = (251, "y", 0, "renamed")  # one key changes among many that do not
    rows[251] = (252, "z", 0, None)  # and one is emptied
    await write(engine, bulk, rows, "t1")
    assert await stored(engine) == [(*row, "t1") for row in rows]


async def test_rows_with_a_single_or_no_value_besides_the_key(engine: AsyncEngine) -> None:
    bulk = BulkUpsert(items, engine.dialect, ("id",), ("owner", "id"), ("stamp",), shared=SHARED)
    await write(engine, bulk, [(i,) for i in range(1, 5)], "t0")
    only_a = BulkUpsert(items, engine.dialect, ("id", "a"), ("owner", "id"), ("a",), shared=SHARED)
    await write(engine, only_a, [(2, None), (3, "three")], "ignored")
    assert await stored(engine) == [
        (1, None, None, None, "t0"),
        (2, None, None, None, "t0"),
        (3, "three", None, None, "t0"),
        (4, None, None, None, "t0"),
    ]


async def test_a_unique_violation_leaves_the_transaction_usable_after_retry_point(
    engine: AsyncEngine,
) -> None:
    bulk = upsert(engine)
    await write(engine, bulk, [(1, None, None, "same")], "t0")
    async with engine.begin() as conn:
        with pytest.raises(sa.exc.IntegrityError):
            async with retry_point(conn):
                await bulk.execute(conn, [(2, None, None, "same")], ("o", "t1"))
        await bulk.execute(conn, [(2, None, None, "other")], ("o", "t1"))  # the transaction goes on
    assert await stored(engine) == [(1, None, None, "same", "t0"), (2, None, None, "other", "t1")]


async def test_stable_columns_alone_in_the_update_are_still_written(engine: AsyncEngine) -> None:
    bulk = BulkUpsert(
        items, engine.dialect, ("id", "key"), ("owner", "id"), ("key",), shared=SHARED, stable=("key",)
    )
    await write(engine, bulk, [(1, "k1"), (2, "k2")], "t0")
    await write(engine, bulk, [(1, "k1"), (2, "changed")], "t1")
    assert await stored(engine) == [(1, None, None, "k1", "t0"), (2, None, None, "changed", "t0")]
