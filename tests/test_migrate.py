"""Alembic owns the schema: heads, round trips, placement, drift detection, data kept across revisions.

Every test runs on SQLite and PostgreSQL (the `backend` fixture), on a fresh database.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiogram.fsm.storage.base import StorageKey
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

import tgpersist
from tgpersist import InvalidArgument, SchemaOutOfDate, UnsupportedDatabase, migrate
from tgpersist.adapters.aiogram import TgPersistStorage
from tgpersist.models import Placement, declare_models

REPO = Path(__file__).resolve().parents[1]
FIRST = "0001_core"
SECOND = "0002_keys_leases_files"
#: Newest first, as `alembic history` lists them; a later revision only adds to the front.
REVISIONS = [r.revision for r in ScriptDirectory.from_config(migrate.config()).walk_revisions()]
HEAD = REVISIONS[0]
#: Our tables at head, without the prefix: what the models declare, plus the version table.
OUR_TABLES = {t.name.removeprefix("tgpersist_") for t in declare_models().metadata.sorted_tables} | {
    "alembic_version"
}
DEFAULT = Placement()
KEY = bytes(range(256))
T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


# -- helpers shared with the CLI and embedding tests ----------------------------------------------


async def on_db(url: str, work: Any) -> Any:
    """Run a sync `work(connection)` on `url` in one committed transaction."""
    engine = tgpersist.create_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


async def table_names(url: str, schema: str | None = None) -> set[str]:
    return set(await on_db(url, lambda conn: sa.inspect(conn).get_table_names(schema=schema)))


async def version_rows(url: str, placement: Placement = DEFAULT) -> list[str]:
    def read(conn: Connection) -> list[str]:
        table = sa.table(placement.version_table, sa.column("version_num"), schema=placement.schema)
        return [row[0] for row in conn.execute(sa.select(table.c.version_num))]

    return list(await on_db(url, read))


async def create_host_tables(url: str) -> None:
    """A host application's own tables, including its own Alembic version table at some revision."""

    def create(conn: Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('host_rev_7')")
        conn.exec_driver_sql("CREATE TABLE orders (id INTEGER PRIMARY KEY, note VARCHAR(50))")
        conn.exec_driver_sql("INSERT INTO orders VALUES (1, 'kept')")

    await on_db(url, create)


async def host_state(url: str) -> tuple[list[Any], list[Any]]:
    def read(conn: Connection) -> tuple[list[Any], list[Any]]:
        versions = [tuple(r) for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
        orders = [tuple(r) for r in conn.exec_driver_sql("SELECT id, note FROM orders")]
        return versions, orders

    result: tuple[list[Any], list[Any]] = await on_db(url, read)
    return result


def run(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command of this venv (alembic, tgpersist, python) as its own process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        list(args), cwd=cwd, env=full_env, capture_output=True, text=True, timeout=240, check=False
    )


def venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


# -- the revision graph ------------------------------------------------------------------------------


def test_one_head_one_branch() -> None:
    script = ScriptDirectory.from_config(migrate.config())
    assert script.get_heads() == [HEAD]
    assert migrate.heads() == (HEAD,)
    assert script.get_revision(migrate.BRANCH + "@head").revision == HEAD
    assert REVISIONS[-2:] == [SECOND, FIRST]
    chain = list(script.walk_revisions())
    for newer, older in itertools.pairwise(chain):
        assert newer.down_revision == older.revision  # one straight line, no merges
    assert chain[-1].down_revision is None
    assert chain[-1].branch_labels == {migrate.BRANCH}
    for rev in chain:
        assert len(rev.revision) <= 32  # the version column is VARCHAR(32)


# -- round trips -----------------------------------------------------------------------------------


async def test_base_head_base_head_leaves_no_strays_and_spares_the_host(db_url: str) -> None:
    await create_host_tables(db_url)
    host_before = await host_state(db_url)

    await migrate.upgrade(db_url)
    assert await table_names(db_url) == {"alembic_version", "orders"} | {f"tgpersist_{t}" for t in OUR_TABLES}
    assert await version_rows(db_url) == [HEAD]

    await migrate.downgrade(db_url, "base")
    assert await table_names(db_url) == {"alembic_version", "orders"}
    assert await migrate.current(db_url) == ()
    assert await host_state(db_url) == host_before

    await migrate.upgrade(db_url, "head")
    assert await version_rows(db_url) == [HEAD]
    await migrate.check(db_url)
    assert await host_state(db_url) == host_before

    await migrate.downgrade(db_url, "base")
    assert not {t for t in await table_names(db_url) if t.startswith("tgpersist")}
    assert await host_state(db_url) == host_before


async def test_step_by_step_up_and_down(db_url: str) -> None:
    await migrate.upgrade(db_url, FIRST)
    assert await migrate.current(db_url) == (FIRST,)
    assert "tgpersist_sent_files" not in await table_names(db_url)
    await migrate.upgrade(db_url, "+1")
    assert await migrate.current(db_url) == (SECOND,)
    assert "tgpersist_sent_files" in await table_names(db_url)
    await migrate.downgrade(db_url, "-1")
    assert await migrate.current(db_url) == (FIRST,)

    def session_columns(conn: Connection) -> set[str]:
        return {c["name"] for c in sa.inspect(conn).get_columns("tgpersist_sessions")}

    columns = await on_db(db_url, session_columns)
    assert not columns & {"auth_key_id", "lease_owner", "lease_token", "lease_expires"}
    assert "tgpersist_sent_files" not in await table_names(db_url)
    assert await version_rows(db_url) == [FIRST]


async def test_migrate_accepts_an_engine_and_leaves_it_open(db_url: str) -> None:
    engine = tgpersist.create_engine(db_url)
    try:
        await migrate.upgrade(engine)
        assert await migrate.current(engine) == (HEAD,)
        await migrate.check(engine)
        async with engine.connect() as conn:  # still usable: not disposed by us
            assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
    finally:
        await engine.dispose()


# -- models and migrations agree --------------------------------------------------------------------


async def test_check_passes_on_a_migrated_database(db_url: str) -> None:
    await migrate.upgrade(db_url)
    await migrate.check(db_url)


async def test_check_names_the_revision_when_behind(db_url: str) -> None:
    with pytest.raises(SchemaOutOfDate, match=r"empty.*tgpersist db upgrade"):
        await migrate.check(db_url)
    await migrate.upgrade(db_url, FIRST)
    with pytest.raises(SchemaOutOfDate, match=f"at {FIRST}, expected {HEAD}.*tgpersist db upgrade"):
        await migrate.check(db_url)


def altered_placement(change: str) -> Placement:
    """A placement of its own whose models are then changed without a migration (models are cached)."""
    placement = Placement(prefix=f"chg{uuid.uuid4().hex[:8]}_")
    tables = declare_models(placement).metadata.tables
    sessions = tables[placement.table("sessions")]
    if change == "add column":
        sessions.append_column(sa.Column("nickname", sa.String(40)))
    elif change == "change type":
        sessions.c.username.type = sa.String(200)
    elif change == "drop table":
        declare_models(placement).metadata.remove(tables[placement.table("sent_files")])
    return placement


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ("add column", "add_column.*nickname"),
        ("change type", "modify_type.*username"),
        ("drop table", "remove_table.*sent_files"),
    ],
)
async def test_check_fails_when_a_model_changes_without_a_migration(
    db_url: str, change: str, detail: str
) -> None:
    placement = altered_placement(change)
    await migrate.upgrade(db_url, placement=placement)
    with pytest.raises(SchemaOutOfDate, match=f"models differ from the database.*{detail}") as caught:
        await migrate.check(db_url, placement=placement)
    assert "\n" not in str(caught.value)


# -- data written at the first revision survives the upgrade ----------------------------------------


async def write_rows_at_first_revision(url: str) -> None:
    """Rows as tgpersist 0001 wrote them, inserted with plain Core against the reflected 0001 tables."""

    def write(conn: Connection) -> None:
        meta = sa.MetaData()
        meta.reflect(conn)

        def insert(table: str, *rows: dict[str, Any]) -> None:
            conn.execute(meta.tables[f"tgpersist_{table}"].insert(), list(rows))

        insert(
            "sessions",
            {
                "name": "alice",
                "dc_id": 2,
                "api_id": 12345,
                "api_hash": "0123456789abcdef0123456789abcdef",
                "test_mode": False,
                "auth_key": KEY,
                "server_address": "149.154.167.51",
                "port": 443,
                "user_id": 2**62,
                "is_bot": False,
                "first_name": "Alice ✓",
                "last_name": None,
                "username": "alice",
                "date": 1_700_000_000,
                "server_salt": -(2**63),
                "takeout_id": None,
                "state": b"\x00\x01",
                "created_at": T0,
                "updated_at": T0,
            },
        )
        insert(
            "dc_auth",
            {
                "session_name": "alice",
                "dc_id": 4,
                "media_only": False,
                "auth_key": KEY[::-1],
                "server_salt": 7,
                "ipv4": "149.154.167.91",
                "ipv6": None,
                "port": 443,
                "test_mode": False,
                "updated_at": T0,
            },
        )
        peer = {"session_name": "alice", "first_name": None, "last_name": None, "phone_number": None}
        peer |= {"phone_key": None, "is_bot": None, "photo_id": None, "language": None, "updated_at": T0}
        insert(
            "peers",
            peer | {"peer_id": 101, "type": "user", "access_hash": -5, "first_name": "Bob", "title": None},
            peer | {"peer_id": -1001234, "type": "channel", "access_hash": 9, "title": "News"},
        )
        insert(
            "usernames",
            {
                "session_name": "alice",
                "username_key": "bob",
                "peer_id": 101,
                "username": "Bob",
                "position": 0,
                "is_primary": True,
            },
        )
        insert(
            "conversations",
            {
                "session_name": "alice",
                "chat_id": 101,
                "user_id": 101,
                "thread_id": 0,
                "namespace": "",
                "name": "signup",
                "step": "email",
                "data_kind": "json",
                "data": b'{"a":1}',
                "created_at": T0,
                "updated_at": T0,
                "expires_at": None,
            },
        )
        insert("update_state", {"session_name": "alice", "pts": 10, "qts": 20, "date": 30, "seq": 40})
        insert("channel_state", {"session_name": "alice", "channel_id": 1234, "pts": 99})
        insert(
            "dedup_keys",
            {"session_name": "alice", "key": "msg:1:2", "expires_at": datetime(2999, 1, 1, tzinfo=UTC)},
        )
        insert(
            "durable_updates",
            {
                "session_name": "alice",
                "id": "upd-1",
                "payload": b"payload",
                "status": "pending",
                "attempts": 0,
                "last_error": None,
                "created_at": T0,
                "updated_at": T0,
                "available_at": T0,
                "lease_owner": None,
                "lease_expires_at": None,
            },
        )

    await on_db(url, write)


async def test_rows_written_at_the_first_revision_survive_the_upgrade(db_url: str) -> None:
    await migrate.upgrade(db_url, FIRST)
    await write_rows_at_first_revision(db_url)

    with pytest.raises(SchemaOutOfDate, match="tgpersist db upgrade") as caught:
        await tgpersist.open_store(db_url)
    assert caught.value.current == (FIRST,)
    assert caught.value.expected == (HEAD,)

    async with await tgpersist.open_store(db_url, upgrade=True) as store:
        assert await migrate.current(store.engine) == (HEAD,)
        acct = store.account("alice")
        session = await acct.session.load()
        assert session is not None
        assert (session.dc_id, session.api_id, session.auth_key) == (2, 12345, KEY)
        assert (session.user_id, session.server_salt, session.state) == (2**62, -(2**63), b"\x00\x01")
        assert (session.first_name, session.username, session.created_at) == ("Alice ✓", "alice", T0)
        dc = await acct.dc_auth.load(4)
        assert dc is not None
        assert (dc.auth_key, dc.ipv4, dc.server_salt) == (KEY[::-1], "149.154.167.91", 7)
        bob = await acct.peers.get_by_username("BOB")
        assert bob is not None
        assert (bob.id, bob.access_hash, bob.username, bob.first_name) == (101, -5, "Bob", "Bob")
        news = await acct.peers.get(-1001234)
        assert news is not None
        assert (news.title, news.access_hash) == ("News", 9)
        conv = await acct.conversations.load(101, 101)
        assert conv is not None
        assert (conv.name, conv.step, conv.data) == ("signup", "email", {"a": 1})
        state = await acct.updates.load_state()
        assert state is not None
        assert (state.pts, state.qts, state.date, state.seq) == (10, 20, 30, 40)
        channel = await acct.updates.load_channel(1234)
        assert channel is not None
        assert channel.pts == 99
        assert await acct.updates.seen("msg:1:2") is True
        claimed = await acct.updates.claim(5)
        assert [(u.id, u.payload) for u in claimed] == [("upd-1", b"payload")]

        def new_columns(conn: Connection) -> list[Any]:
            return [
                tuple(r)
                for r in conn.exec_driver_sql(
                    "SELECT auth_key_id, lease_owner, lease_token, lease_expires FROM tgpersist_sessions"
                )
            ]

        assert await on_db(db_url, new_columns) == [(None, None, 0, None)]
        # Session writes still work on the upgraded rows.
        await acct.updates.save_channel(tgpersist.ChannelState(1234, 100))
        assert (await acct.updates.load_channel(1234)) == tgpersist.ChannelState(1234, 100)
    await migrate.check(db_url)


USERNAME_ROWS = [  # (peer, username, position, is_primary) as revisions 0001-0002 stored them
    (1, "Solo", 0, True),
    (2, "first", 0, False),
    (2, "Middle", 1, True),
    (2, "last", 2, False),
    (3, "a", 0, False),
    (3, "b", 1, False),
    (3, "End", 2, True),
    (4, "only_x", 0, False),  # collectibles without a primary username
    (4, "only_y", 1, False),
]


async def test_primary_usernames_move_into_the_peer_rows_and_back(db_url: str) -> None:
    """0003 moves each primary username into its peer's row and keeps the others in order; its
    downgrade puts the primaries back at the positions they had."""
    await migrate.upgrade(db_url, SECOND)

    def write(conn: Connection) -> None:
        meta = sa.MetaData()
        meta.reflect(conn)
        conn.execute(
            meta.tables["tgpersist_sessions"].insert(),
            [{"name": "alice", "test_mode": False, "created_at": T0, "updated_at": T0}],
        )
        conn.execute(
            meta.tables["tgpersist_peers"].insert(),
            [
                {"session_name": "alice", "peer_id": i, "type": "user", "access_hash": i, "updated_at": T0}
                for i in (1, 2, 3, 4, 5)
            ],
        )
        conn.execute(
            meta.tables["tgpersist_usernames"].insert(),
            [
                {
                    "session_name": "alice",
                    "username_key": name.lower(),
                    "peer_id": peer,
                    "username": name,
                    "position": position,
                    "is_primary": primary,
                }
                for peer, name, position, primary in USERNAME_ROWS
            ],
        )

    await on_db(db_url, write)
    await migrate.upgrade(db_url)
    async with await tgpersist.open_store(db_url) as store:
        peers = {p.id: p for p in await store.account("alice").peers.list()}
        assert [(peers[i].username, peers[i].usernames) for i in (1, 2, 3, 4, 5)] == [
            ("Solo", ("Solo",)),
            ("Middle", ("first", "Middle", "last")),
            ("End", ("a", "b", "End")),
            (None, ("only_x", "only_y")),
            (None, ()),
        ]
        found = await store.account("alice").peers.get_by_username("SOLO")
        assert found is not None and found.id == 1
        found = await store.account("alice").peers.get_by_username("only_y")
        assert found is not None and found.id == 4
    await migrate.check(db_url)

    await migrate.downgrade(db_url, SECOND)

    def read(conn: Connection) -> list[tuple[Any, ...]]:
        rows = conn.exec_driver_sql(
            "SELECT peer_id, username, position, is_primary FROM tgpersist_usernames "
            "ORDER BY peer_id, position"
        )
        return [(peer, name, position, bool(primary)) for peer, name, position, primary in rows]

    assert await on_db(db_url, read) == USERNAME_ROWS
    await migrate.upgrade(db_url)
    await migrate.check(db_url)


#: aiogram conversation keys as 0003 stored them, and as 0004 stores them.
AIOGRAM_KEYS = [
    ("aiogram:1", "default|", "default|"),
    ("aiogram:1", "default|bc-1", "default|bc-1"),
    ("aiogram:1", "pay|bc|x", "pay|bc\\|x"),
    ("aiogram:1", "back\\slash|b\\", "back\\\\slash|b\\\\"),
    ("aiogram:2", "a|b|", "a|b\\|"),
    ("other", "mine|with|pipes", "mine|with|pipes"),  # not an aiogram account: left alone
]


async def test_aiogram_keys_get_their_unambiguous_form_and_back(db_url: str) -> None:
    """0004 rewrites the aiogram adapter's conversation keys (split at the first `|`) and only those;
    its downgrade restores them."""
    await migrate.upgrade(db_url, "0003_primary_username")

    def write(conn: Connection) -> None:
        meta = sa.MetaData()
        meta.reflect(conn)
        names = sorted({session for session, _, _ in AIOGRAM_KEYS})
        conn.execute(
            meta.tables["tgpersist_sessions"].insert(),
            [{"name": n, "test_mode": False, "created_at": T0, "updated_at": T0} for n in names],
        )
        conn.execute(
            meta.tables["tgpersist_conversations"].insert(),
            [
                {"session_name": session, "chat_id": 1, "user_id": 2, "thread_id": 0, "namespace": old}
                | {"step": f"S:{number}", "created_at": T0, "updated_at": T0}
                for number, (session, old, _) in enumerate(AIOGRAM_KEYS)
            ],
        )

    def read(conn: Connection) -> list[tuple[str, str]]:
        rows = conn.exec_driver_sql(
            "SELECT session_name, namespace, step FROM tgpersist_conversations ORDER BY step"
        )
        return [(session, namespace) for session, namespace, _ in rows]

    await on_db(db_url, write)
    await migrate.upgrade(db_url)
    assert await on_db(db_url, read) == [(session, new) for session, _, new in AIOGRAM_KEYS]
    async with await tgpersist.open_store(db_url) as store:
        storage = TgPersistStorage(store)
        key = StorageKey(bot_id=1, chat_id=1, user_id=2, destiny="pay", business_connection_id="bc|x")
        assert await storage.get_state(key) == "S:2"
        key = StorageKey(bot_id=2, chat_id=1, user_id=2, destiny="a", business_connection_id="b|")
        assert await storage.get_state(key) == "S:4"
    await migrate.check(db_url)

    await migrate.downgrade(db_url, "0003_primary_username")
    assert await on_db(db_url, read) == [(session, old) for session, old, _ in AIOGRAM_KEYS]
    await migrate.upgrade(db_url)
    await migrate.check(db_url)


async def test_a_database_newer_than_the_package_is_refused(db_url: str) -> None:
    await migrate.upgrade(db_url)
    await on_db(
        db_url, lambda c: c.exec_driver_sql("UPDATE tgpersist_alembic_version SET version_num='9999'")
    )
    with pytest.raises(SchemaOutOfDate, match="newer than this tgpersist"):
        await tgpersist.open_store(db_url, upgrade=True)


async def test_tables_with_our_prefix_but_no_version_table_are_not_taken_for_an_empty_database(
    db_url: str,
) -> None:
    await on_db(db_url, lambda c: c.exec_driver_sql("CREATE TABLE tgpersist_sessions (name VARCHAR(5))"))
    for upgrade in (False, True):
        with pytest.raises(SchemaOutOfDate, match="tgpersist_alembic_version does not") as caught:
            await tgpersist.open_store(db_url, upgrade=upgrade)
        assert "use Store(engine)" in str(caught.value)
    assert await table_names(db_url) == {"tgpersist_sessions"}


# -- placement ---------------------------------------------------------------------------------------


async def test_prefix_placement(db_url: str) -> None:
    tg = Placement(prefix="tg_")
    async with await tgpersist.open_store(db_url, prefix="tg_") as store:
        acct = store.account("carol")
        await acct.peers.save(tgpersist.Peer(7, tgpersist.PeerType.USER, access_hash=70, username="c7"))
        assert (await acct.peers.get_by_username("c7")) is not None
        assert await store.list_sessions() == ["carol"]
    assert await table_names(db_url) == {f"tg_{t}" for t in OUR_TABLES}
    assert await version_rows(db_url, tg) == [HEAD]
    await migrate.check(db_url, placement=tg)
    # The default placement is untouched and independent.
    assert await migrate.current(db_url) == ()
    await migrate.upgrade(db_url)
    await migrate.check(db_url)
    await migrate.downgrade(db_url, "base", placement=tg)
    assert await table_names(db_url) == {f"tgpersist_{t}" for t in OUR_TABLES}


async def test_schema_placement(backend: str, db_url: str) -> None:
    telegram = Placement(schema="telegram")
    if backend == "sqlite":
        with pytest.raises(InvalidArgument, match="schema"):
            await tgpersist.open_store(db_url, schema="telegram")
        engine = tgpersist.create_engine(db_url)
        try:
            with pytest.raises(InvalidArgument) as caught:
                tgpersist.Store(engine, schema="telegram")
            assert caught.value.field == "schema"
        finally:
            await engine.dispose()
        with pytest.raises(UnsupportedDatabase, match="schema placement needs PostgreSQL"):
            await migrate.upgrade(db_url, placement=telegram)
        assert await table_names(db_url) == set()
        return

    async with await tgpersist.open_store(db_url, schema="telegram", prefix="tg_") as store:
        acct = store.account("dave")
        await acct.updates.save_state(tgpersist.UpdateState(pts=1, qts=2, date=3, seq=4))
        assert await acct.updates.load_state() == tgpersist.UpdateState(pts=1, qts=2, date=3, seq=4)
    assert await table_names(db_url, "telegram") == {f"tg_{t}" for t in OUR_TABLES}
    assert await table_names(db_url) == set()  # nothing in public

    await migrate.upgrade(db_url, placement=telegram)
    assert await table_names(db_url, "telegram") >= {f"tgpersist_{t}" for t in OUR_TABLES}
    await migrate.check(db_url, placement=telegram)
    await migrate.check(db_url, placement=Placement(prefix="tg_", schema="telegram"))
    await migrate.downgrade(db_url, "base", placement=telegram)
    await migrate.downgrade(db_url, "base", placement=Placement(prefix="tg_", schema="telegram"))
    assert await table_names(db_url, "telegram") == set()


# -- the repository's own alembic.ini ------------------------------------------------------------------


async def test_alembic_upgrade_head_from_the_repository(backend: str, db_url: str) -> None:
    alembic = venv_bin("alembic")
    up = run(alembic, "-x", f"url={db_url}", "upgrade", "head")
    assert up.returncode == 0, up.stderr
    await migrate.check(db_url)
    assert await version_rows(db_url) == [HEAD]

    heads = run(alembic, "heads")
    assert heads.stdout.split() == [HEAD, "(tgpersist)", "(head)"]

    placed = ["-x", f"url={db_url}", "-x", "prefix=tg_"]
    if backend == "postgresql":
        placed += ["-x", "schema=telegram"]
    up = run(alembic, *placed, "upgrade", "head")
    assert up.returncode == 0, up.stderr
    where = Placement(prefix="tg_", schema="telegram" if backend == "postgresql" else None)
    await migrate.check(db_url, placement=where)

    down = run(alembic, "-x", f"url={db_url}", "downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert not {t for t in await table_names(db_url) if t.startswith("tgpersist_")}

    # TGPERSIST_URL is the fallback when there is no -x url=.
    up = run(alembic, "upgrade", "head", env={"TGPERSIST_URL": db_url})
    assert up.returncode == 0, up.stderr
    await migrate.check(db_url)


def test_alembic_upgrade_offline_sql(tmp_path: Path) -> None:
    """`alembic upgrade head --sql` writes the DDL for a DBA without connecting, on both dialects."""
    for url in (f"sqlite+aiosqlite:///{tmp_path}/x.db", "postgresql+asyncpg://nobody@127.0.0.1:1/none"):
        out = run(venv_bin("alembic"), "-x", f"url={url}", "upgrade", "head", "--sql")
        assert out.returncode == 0, out.stderr
        assert "CREATE TABLE tgpersist_sessions" in out.stdout
        assert "ALTER TABLE tgpersist_sessions ADD COLUMN lease_token BIGINT DEFAULT 0 NOT NULL" in out.stdout
        assert f"UPDATE tgpersist_alembic_version SET version_num='{HEAD}'" in out.stdout
    assert not (tmp_path / "x.db").exists()


# -- concurrent deploys --------------------------------------------------------------------------------

DEPLOYERS = 4
#: One deploy process: with its imports done it says "ready" and waits for "go" on stdin, then upgrades
#: the schema either as `open_store(upgrade=True)` or through the `tgpersist db upgrade` entry point.
DEPLOY = """
import asyncio, sys
import tgpersist, tgpersist.cli
how, url, name = sys.argv[1:]
print("ready", flush=True)
sys.stdin.readline()
if how == "cli":
    sys.exit(tgpersist.cli.main(["db", "upgrade", "--url", url]))
async def main():
    async with await tgpersist.open_store(url, upgrade=True) as store:
        await store.account(name).updates.remember("k")
asyncio.run(main())
"""


@pytest.mark.parametrize("how", ["open_store", "cli"])
async def test_concurrent_deploys_end_with_one_correct_schema(db_url: str, how: str, tmp_path: Path) -> None:
    pipe = asyncio.subprocess.PIPE
    procs = [
        await asyncio.create_subprocess_exec(
            *(sys.executable, "-c", DEPLOY, how, db_url, f"p{i}"),
            cwd=tmp_path,
            stdin=pipe,
            stdout=pipe,
            stderr=pipe,
        )
        for i in range(DEPLOYERS)
    ]
    async with asyncio.timeout(240):
        for proc in procs:
            assert proc.stdout is not None
            assert await proc.stdout.readline() == b"ready\n"
        for proc in procs:  # all at once
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
        results = await asyncio.gather(*(p.communicate() for p in procs))
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()
        if how == "cli":
            assert out.decode() == f"at {HEAD}\n"
    assert await version_rows(db_url) == [HEAD]
    assert await table_names(db_url) == {f"tgpersist_{t}" for t in OUR_TABLES}
    await migrate.check(db_url)
    if how == "open_store":
        async with await tgpersist.open_store(db_url) as store:
            assert await store.list_sessions() == [f"p{i}" for i in range(DEPLOYERS)]
