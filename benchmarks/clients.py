"""The contestants tgpersist is compared with: Telethon's `SQLiteSession`, Kurigram's `SQLiteStorage`,
and the raw drivers (sqlite3, aiosqlite, asyncpg) running tgpersist's own statements on its own schema.

Durability: the raw SQLite baselines use what tgpersist uses (WAL, synchronous=NORMAL, foreign keys
on, one `BEGIN IMMEDIATE` transaction per batch). Telethon and Kurigram run as they ship: rollback
journal (DELETE) and SQLite's default synchronous=FULL, committing when their `save()`/`commit()` is
called; a second variant of each is measured in WAL (Telethon also at synchronous=NORMAL).
`python -m benchmarks.clients` measures these alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
from pyrogram.storage import SQLiteStorage
from sqlalchemy.dialects.postgresql import asyncpg as pg_dialect
from sqlalchemy.dialects.sqlite import aiosqlite as sqlite_dialect
from sqlalchemy.engine.url import make_url
from telethon.sessions import SQLiteSession
from telethon.tl.types.updates import State

from benchmarks.data import Users, raw_rows
from benchmarks.harness import CLIENT, RAW, Contestant, per_call, per_call_sync
from tgpersist.models import default_models
from tgpersist.repositories.peers import PEER_COLUMNS, PEER_SHARED, statements_for
from tgpersist.sql import statements

SQLITE = sqlite_dialect.dialect()
POSTGRES = pg_dialect.dialect()


def sql_for(sa_dialect: Any) -> Any:
    """tgpersist's own peer statements, compiled for `sa_dialect`."""
    return statements_for(default_models, sa_dialect)


def sqlite_path(url: str) -> str:
    database = make_url(url).database
    assert database
    return database


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def open_raw_sqlite(path: str) -> sqlite3.Connection:
    """A sqlite3 connection configured as tgpersist configures its own."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in ("busy_timeout = 30000", "foreign_keys = ON", "journal_mode = WAL", "synchronous = NORMAL"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def add_session(conn: sqlite3.Connection, name: str) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO tgpersist_sessions (name, test_mode, created_at, updated_at, lease_token) "
        "VALUES (?, 0, '2024-01-01 00:00:00.000000', '2024-01-01 00:00:00.000000', 0)",
        (name,),
    )


async def add_pg_session(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute(
        "INSERT INTO tgpersist_sessions (name, test_mode, created_at, updated_at) "
        "VALUES ($1, false, now(), now()) ON CONFLICT DO NOTHING",
        name,
    )


def sqlite_write(conn: sqlite3.Connection, peers: list[Any]) -> None:
    """tgpersist's peer upsert as one-row statements through sqlite3 executemany, in one BEGIN
    IMMEDIATE transaction (what a hand-written store would do)."""
    sql = sql_for(SQLITE)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(sql.upsert_peers.sql, peers)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# -- bulk upsert ------------------------------------------------------------------------------------
class Bulk:
    """Shared by the bulk contestants: which data a round writes and into which session."""

    def __init__(self, label: str, mode: str, prefill: Users, rounds_data: Sequence[Users]) -> None:
        self.label = label
        self.mode = mode
        self.prefill = prefill
        self.rounds_data = rounds_data

    def data(self, round_: int) -> Users:
        return self.rounds_data[round_ % len(self.rounds_data)]

    def session(self, who: str, round_: int) -> str:
        return f"{who}-{self.label}-{self.mode}-{round_ if self.mode == 'new' else 'x'}"


def raw_sqlite_bulk(bulk: Bulk, path: str) -> Contestant:
    conn = open_raw_sqlite(path)
    stamp = statements.driver_value(sql_for(SQLITE).stamp, datetime.now(UTC), SQLITE)
    state: dict[str, Any] = {}

    async def setup(round_: int) -> None:
        session = bulk.session("raw", round_)
        add_session(conn, session)
        if bulk.mode == "overwrite" and round_ == 0:
            sqlite_write(conn, raw_rows(bulk.prefill, session, stamp))
        state["rows"] = raw_rows(bulk.data(round_), session, stamp)

    async def run(round_: int) -> None:
        sqlite_write(conn, state["rows"])

    return Contestant("raw sqlite3 executemany", RAW, run, setup, "tgpersist's upsert, same rows")


def raw_asyncpg_bulk(bulk: Bulk, conn: asyncpg.Connection, method: str) -> Contestant:
    sql = sql_for(POSTGRES)
    stamp = datetime.now(UTC)
    state: dict[str, Any] = {}
    columns = (*PEER_SHARED, *PEER_COLUMNS)
    insert, update = (
        sql.upsert_peers.sql.split(" SELECT ", 1)[0],
        sql.upsert_peers.sql.split(" ON CONFLICT", 1)[1],
    )
    values = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    row_sql = f"{insert} VALUES ({values}) ON CONFLICT{update}"
    per_row = ", ".join(PEER_COLUMNS)
    copy_sql = sql.upsert_peers._from_copy.format(source="bench_peers")

    async def write(peers: list[Any]) -> None:
        shared = peers[0][: len(PEER_SHARED)]  # one session and one timestamp per batch
        per_row_values = state.get("records") or [row[len(PEER_SHARED) :] for row in peers]
        async with conn.transaction():
            if method == "executemany":
                await conn.executemany(row_sql, peers)
            elif method == "unnest":
                arrays = [list(c) for c in zip(*peers, strict=True)][len(PEER_SHARED) :]
                await conn.execute(sql.upsert_peers.sql, *shared, *arrays)
            else:  # the per-row columns COPYed into a temporary table, then one INSERT ... SELECT
                await conn.execute(
                    f"CREATE TEMP TABLE bench_peers ON COMMIT DROP AS SELECT {per_row} FROM tgpersist_peers "
                    "WITH NO DATA"
                )
                await conn.copy_records_to_table("bench_peers", records=per_row_values, columns=PEER_COLUMNS)
                await conn.execute(copy_sql, *shared)

    async def setup(round_: int) -> None:
        session = bulk.session(f"pg{method}", round_)
        await add_pg_session(conn, session)
        state.pop("records", None)
        if bulk.mode == "overwrite" and round_ == 0:
            await write(raw_rows(bulk.prefill, session, stamp))
        state["rows"] = raw_rows(bulk.data(round_), session, stamp)
        state["records"] = [row[len(PEER_SHARED) :] for row in state["rows"]]  # driver-ready, untimed

    async def run(round_: int) -> None:
        await write(state["rows"])

    note = {
        "executemany": "one-row upsert, executemany",
        "unnest": "one upsert over arrays",
        "copy": "COPY into a temp table, INSERT ... SELECT from it",
    }
    return Contestant(f"raw asyncpg {method}", RAW, run, setup, note[method])


def telethon_bulk(bulk: Bulk, workdir: Path, wal: bool = False) -> Contestant:
    sessions: dict[str, SQLiteSession] = {}
    state: dict[str, Any] = {}

    def session_for(name: str) -> SQLiteSession:
        if name not in sessions:
            session = sessions[name] = SQLiteSession(str(workdir / name))
            if wal:
                session._conn.execute("PRAGMA journal_mode = WAL")
                session._conn.execute("PRAGMA synchronous = NORMAL")
        return sessions[name]

    async def setup(round_: int) -> None:
        session = session_for(bulk.session("telethon-wal" if wal else "telethon", round_))
        if bulk.mode == "overwrite" and round_ == 0:
            session.process_entities(bulk.prefill.telethon)
            session.save()
        state["session"] = session
        state["users"] = bulk.data(round_).telethon

    async def run(round_: int) -> None:
        state["session"].process_entities(state["users"])
        state["session"].save()

    name = "Telethon process_entities+save" + (" (WAL, NORMAL)" if wal else "")
    note = "WAL, synchronous=NORMAL" if wal else "as shipped: DELETE journal, synchronous=FULL"
    return Contestant(name, CLIENT, run, setup, note)


def kurigram_bulk(bulk: Bulk, workdir: Path, storages: list[SQLiteStorage], wal: bool = False) -> Contestant:
    opened: dict[str, SQLiteStorage] = {}
    state: dict[str, Any] = {}

    async def storage_for(name: str) -> SQLiteStorage:
        if name not in opened:
            storage = opened[name] = SQLiteStorage(name, workdir=workdir, use_wal=wal)
            await storage.open()
            storages.append(storage)
        return opened[name]

    async def write(storage: SQLiteStorage, data: Users) -> None:
        await storage.update_peers(data.kurigram_peers)
        await storage.update_usernames(data.kurigram_usernames)
        storage.conn.commit()

    async def setup(round_: int) -> None:
        storage = await storage_for(bulk.session("kurigram-wal" if wal else "kurigram", round_))
        if bulk.mode == "overwrite" and round_ == 0:
            await write(storage, bulk.prefill)
        state["storage"] = storage
        state["data"] = bulk.data(round_)

    async def run(round_: int) -> None:
        await write(state["storage"], state["data"])

    name = "Kurigram update_peers+update_usernames+commit" + (" (WAL)" if wal else "")
    note = "use_wal=True, synchronous=FULL" if wal else "as shipped: DELETE journal, synchronous=FULL"
    return Contestant(name, CLIENT, run, setup, note)


# -- lookups ----------------------------------------------------------------------------------------
class Lookups:
    """Seeded once with the same users everywhere; `keys(round)` picks the ids or usernames to look up."""

    def __init__(self, data: Users, calls: int, hot: bool) -> None:
        self.data = data
        self.calls = calls
        self.hot = hot

    def ids(self, round_: int) -> list[int]:
        peers = self.data.peers
        if self.hot:  # a working set of 100 peers, looked up again and again
            return [peers[i % 100].id for i in range(self.calls)]
        start = (round_ * self.calls) % len(peers)
        return [peers[(start + i * 7) % len(peers)].id for i in range(self.calls)]

    def usernames(self, round_: int) -> list[str]:
        by_id = {p.id: p.username for p in self.data.peers}
        return [by_id[i] or "" for i in self.ids(round_)]


def raw_sqlite_lookups(look: Lookups, path: str, session: str, by: str) -> list[Contestant]:
    conn = open_raw_sqlite(path)
    sql = sql_for(SQLITE)
    query = sql.by_id if by == "id" else sql.by_username

    def params(key: Any) -> tuple[Any, ...]:
        return query.params({"session_name": session, "peer_id" if by == "id" else "key": key})

    def keys(round_: int) -> list[Any]:
        return look.ids(round_) if by == "id" else [k.lower() for k in look.usernames(round_)]

    async def sqlite3_run(round_: int) -> list[float]:
        text = query.sql
        ps = [params(k) for k in keys(round_)]
        return per_call_sync([lambda p=p: conn.execute(text, p).fetchall() for p in ps])

    holder: dict[str, Any] = {}

    async def aiosqlite_setup(round_: int) -> None:
        if "conn" not in holder:
            holder["conn"] = await aiosqlite.connect(path, isolation_level=None)

    async def cursor_run(round_: int) -> list[float]:
        db = holder["conn"]

        async def one(p: tuple[Any, ...]) -> None:
            async with db.execute(query.sql, p) as cursor:
                await cursor.fetchall()

        ps = [params(k) for k in keys(round_)]
        return await per_call([lambda p=p: one(p) for p in ps])

    async def fetchall_run(round_: int) -> list[float]:
        db = holder["conn"]
        ps = [params(k) for k in keys(round_)]
        return await per_call([lambda p=p: db.execute_fetchall(query.sql, p) for p in ps])

    return [
        Contestant("raw sqlite3 single select", RAW, sqlite3_run, note="tgpersist's SELECT, in-process"),
        Contestant(
            "raw aiosqlite execute+fetch+close", RAW, cursor_run, aiosqlite_setup, "3 thread hops per select"
        ),
        Contestant(
            "raw aiosqlite execute_fetchall", RAW, fetchall_run, aiosqlite_setup, "1 thread hop per select"
        ),
    ]


def raw_asyncpg_lookups(look: Lookups, conn: asyncpg.Connection, session: str, by: str) -> Contestant:
    sql = sql_for(POSTGRES)
    query = sql.by_id if by == "id" else sql.by_username

    async def run(round_: int) -> list[float]:
        keys: Sequence[Any] = look.ids(round_) if by == "id" else [k.lower() for k in look.usernames(round_)]
        name = "peer_id" if by == "id" else "key"
        ps = [query.params({"session_name": session, name: k}) for k in keys]
        return await per_call([lambda p=p: conn.fetch(query.sql, *p) for p in ps])

    return Contestant("raw asyncpg fetch", RAW, run, note="tgpersist's SELECT, prepared")


def telethon_lookups(look: Lookups, session: SQLiteSession, by: str) -> Contestant:
    async def run(round_: int) -> list[float]:
        keys: Sequence[Any] = look.ids(round_) if by == "id" else look.usernames(round_)
        return per_call_sync([lambda k=k: session.get_input_entity(k) for k in keys])

    return Contestant("Telethon get_input_entity", CLIENT, run, note="no cache: one SELECT per call")


def kurigram_lookups(look: Lookups, storage: SQLiteStorage, by: str) -> Contestant:
    async def run(round_: int) -> list[float]:
        if by == "id":
            return await per_call([lambda k=k: storage.get_peer_by_id(k) for k in look.ids(round_)])
        return await per_call([lambda k=k: storage.get_peer_by_username(k) for k in look.usernames(round_)])

    name = "Kurigram get_peer_by_id" if by == "id" else "Kurigram get_peer_by_username"
    return Contestant(name, CLIENT, run, note="no cache: one SELECT per call")


async def seeded_clients(
    data: Users, workdir: Path, storages: list[SQLiteStorage]
) -> tuple[SQLiteSession, SQLiteStorage]:
    """A Telethon session and a Kurigram storage holding `data`, committed."""
    telethon = SQLiteSession(str(workdir / "telethon-reads"))
    telethon.process_entities(data.telethon)
    telethon.save()
    kurigram = SQLiteStorage("kurigram-reads", workdir=workdir)
    await kurigram.open()
    storages.append(kurigram)
    await kurigram.update_peers(data.kurigram_peers)
    await kurigram.update_usernames(data.kurigram_usernames)
    kurigram.conn.commit()
    return telethon, kurigram


# -- update state ------------------------------------------------------------------------------------
def telethon_state(session: SQLiteSession, calls: int) -> list[Contestant]:
    async def save(round_: int) -> list[float]:
        def one(i: int) -> None:
            session.set_update_state(0, State(pts=i, qts=i, date=datetime.now(UTC), seq=i, unread_count=0))
            session.save()

        return per_call_sync([lambda i=i: one(round_ * calls + i) for i in range(calls)])

    async def load(round_: int) -> list[float]:
        return per_call_sync([lambda: session.get_update_state(0) for _ in range(calls)])

    return [
        Contestant("Telethon set_update_state+save", CLIENT, save, note="as shipped: synchronous=FULL"),
        Contestant("Telethon get_update_state", CLIENT, load),
    ]


def kurigram_state(storage: SQLiteStorage, calls: int) -> list[Contestant]:
    from pyrogram.storage.storage import UpdateState

    async def save(round_: int) -> list[float]:
        async def one(i: int) -> None:
            await storage.set_update_state(UpdateState(id=0, pts=i, qts=i, date=i, seq=i))
            storage.conn.commit()

        return await per_call([lambda i=i: one(round_ * calls + i) for i in range(calls)])

    async def load(round_: int) -> list[float]:
        return await per_call([lambda: storage.get_update_states(0) for _ in range(calls)])

    return [
        Contestant("Kurigram set_update_state+commit", CLIENT, save, note="as shipped: synchronous=FULL"),
        Contestant("Kurigram get_update_states", CLIENT, load),
    ]


async def measure(urls: dict[str, str]) -> list[dict[str, Any]]:
    """The clients and raw drivers alone (the side-by-side run is `benchmarks.peers`)."""
    from benchmarks import peers

    return await peers.measure(urls, only_others=True)


if __name__ == "__main__":
    import json

    async def main() -> None:
        from benchmarks.__main__ import databases

        with tempfile.TemporaryDirectory() as tmp:
            async with databases(Path(tmp)) as urls:
                print(json.dumps(await measure(urls), indent=1))

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
