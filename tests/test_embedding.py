"""Embedding in a host application: one transaction for the host's rows and ours, and the example app.

The host here is `examples/host_app/` (package `shop`): its own declarative Base, its own Alembic
environment, and a table with a foreign key to `tgpersist_sessions.name`. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import tgpersist
from tests.test_migrate import HEAD, OUR_TABLES, REPO, on_db, run, table_names, venv_bin, version_rows
from tgpersist import InvalidArgument, Peer, PeerType, Session, migrate
from tgpersist.errors import ConstraintViolation

EXAMPLE = REPO / "examples" / "host_app"
sys.path.insert(0, str(EXAMPLE))

from shop.app import connect, list_bots  # noqa: E402
from shop.models import Base, BotAccount, Customer  # noqa: E402

KEY = bytes(range(256))
SHOP_TABLES = {"shop_customers", "shop_bots"}


@dataclass
class Shop:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    store: tgpersist.Store


@pytest.fixture
async def shop(db_url: str) -> AsyncIterator[Shop]:
    """Our schema (through our migrations) and the shop's tables, on one fresh database."""
    await migrate.upgrade(db_url)
    engine, sessions, store = connect(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield Shop(engine, sessions, store)
    await store.close()
    await engine.dispose()


async def counts(shop: Shop) -> dict[str, int]:
    async with shop.engine.connect() as conn:
        found = {}
        for table in ("shop_customers", "shop_bots", "tgpersist_sessions", "tgpersist_peers"):
            found[table] = (await conn.exec_driver_sql(f"SELECT count(*) FROM {table}")).scalar_one()
        found["tgpersist_durable_updates"] = (
            await conn.exec_driver_sql("SELECT count(*) FROM tgpersist_durable_updates")
        ).scalar_one()
        return found


NOTHING = {
    "shop_customers": 0,
    "shop_bots": 0,
    "tgpersist_sessions": 0,
    "tgpersist_peers": 0,
    "tgpersist_durable_updates": 0,
}


async def write_everything(db: AsyncSession, store: tgpersist.Store, name: str) -> None:
    """Host rows and tgpersist rows, all in the host's session `db`."""
    customer = Customer(email=f"{name}@example.com")
    db.add(customer)
    acct = store.account(name, session=db)
    await acct.session.save(Session(name, dc_id=2, auth_key=KEY))
    await acct.peers.save(Peer(101, PeerType.USER, access_hash=5, username="bob"))
    await acct.updates.enqueue(tgpersist.DurableUpdate(id="u1", payload=b"x"))
    db.add(BotAccount(customer=customer, session_name=name))
    await db.flush()


# -- one transaction for the host's rows and ours ---------------------------------------------------


async def test_a_rolled_back_host_transaction_leaves_neither(shop: Shop) -> None:
    async with shop.sessions() as db, db.begin():
        await write_everything(db, shop.store, "alice")
        # Inside the transaction the joined account sees its own uncommitted rows ...
        acct = shop.store.account("alice", session=db)
        assert (await acct.peers.get_by_username("bob")) is not None
        # ... and nobody outside does.
        assert await shop.store.list_sessions() == []
        await db.rollback()
    assert await counts(shop) == NOTHING
    outside = shop.store.account("alice")
    assert await outside.session.load() is None
    assert await outside.peers.get(101) is None
    assert await outside.peers.get_by_username("bob") is None
    assert await outside.updates.claim(5) == []


async def test_an_exception_in_host_code_rolls_back_both(shop: Shop) -> None:
    with pytest.raises(RuntimeError, match="host failure"):
        async with shop.sessions() as db, db.begin():
            await write_everything(db, shop.store, "alice")
            raise RuntimeError("host failure")
    assert await counts(shop) == NOTHING


async def test_a_committed_host_transaction_keeps_both(shop: Shop) -> None:
    async with shop.sessions() as db, db.begin():
        await write_everything(db, shop.store, "alice")
    assert await counts(shop) == {
        "shop_customers": 1,
        "shop_bots": 1,
        "tgpersist_sessions": 1,
        "tgpersist_peers": 1,
        "tgpersist_durable_updates": 1,
    }
    acct = shop.store.account("alice")
    session = await acct.session.load()
    assert session is not None
    assert session.auth_key == KEY
    assert [u.id for u in await acct.updates.claim(5)] == ["u1"]
    assert await list_bots(shop.sessions) == [("alice@example.com", "alice")]


async def test_a_failed_tgpersist_write_leaves_the_host_transaction_usable(shop: Shop) -> None:
    async with shop.sessions() as db, db.begin():
        await write_everything(db, shop.store, "alice")
        acct = shop.store.account("alice", session=db)
        # shop_bots references the session with ON DELETE RESTRICT: this write fails ...
        with pytest.raises(ConstraintViolation) as info:  # names table and constraint, no values
            await acct.session.delete()
        assert info.value.kind == "foreign_key"
        # ... inside its SAVEPOINT only: the host's transaction goes on, with everything it had.
        await acct.peers.save(Peer(102, PeerType.USER, access_hash=6, username="carol"))
        db.add(Customer(email="second@example.com"))
        await db.flush()
    found = await counts(shop)
    assert (found["shop_customers"], found["shop_bots"]) == (2, 1)
    assert (found["tgpersist_sessions"], found["tgpersist_peers"]) == (1, 2)
    assert await shop.store.account("alice").session.load() is not None


async def test_a_joined_account_writes_again_after_a_rollback(shop: Shop) -> None:
    async with shop.sessions() as db:
        acct = shop.store.account("alice", session=db)
        async with db.begin():
            await acct.peers.save(Peer(101, PeerType.USER, access_hash=5))
            await db.rollback()
        # The session row it created went with the rollback; the next write makes it again.
        async with db.begin():
            await acct.peers.save(Peer(101, PeerType.USER, access_hash=7))
    peer = await shop.store.account("alice").peers.get(101)
    assert peer is not None
    assert peer.access_hash == 7
    assert await shop.store.list_sessions() == ["alice"]


async def test_reads_outside_follow_the_outcome_of_the_host_transaction(shop: Shop) -> None:
    outside = shop.store.account("alice")
    await outside.peers.save(Peer(101, PeerType.USER, access_hash=1, username="bob"))
    assert (await outside.peers.get(101)).access_hash == 1  # type: ignore[union-attr]

    async with shop.sessions() as db:
        joined = shop.store.account("alice", session=db)
        async with db.begin():
            await joined.peers.save(Peer(101, PeerType.USER, access_hash=2, username="robert"))
            assert (await joined.peers.get(101)).access_hash == 2  # type: ignore[union-attr]
            await db.rollback()
        assert (await outside.peers.get(101)).access_hash == 1  # type: ignore[union-attr]
        assert (await outside.peers.get_by_username("bob")) is not None
        assert (await outside.peers.get_by_username("robert")) is None

        async with db.begin():
            await joined.peers.save(Peer(101, PeerType.USER, access_hash=3, username="robert"))
        assert (await outside.peers.get(101)).access_hash == 3  # type: ignore[union-attr]
        assert (await outside.peers.get_by_username("bob")) is None
        assert (await outside.peers.get_by_username("robert")).access_hash == 3  # type: ignore[union-attr]


async def test_account_rejects_something_that_is_not_an_async_session(shop: Shop) -> None:
    with pytest.raises(InvalidArgument) as caught:
        shop.store.account("alice", session=object())  # type: ignore[arg-type]
    assert caught.value.field == "session"


async def test_the_foreign_key_from_the_host_table_to_ours_is_enforced(shop: Shop) -> None:
    async with shop.sessions() as db, db.begin():
        customer = Customer(email="x@example.com")
        db.add(customer)
        await db.flush()
        with pytest.raises(IntegrityError):
            async with db.begin_nested():
                db.add(BotAccount(customer_id=customer.id, session_name="no-such-session"))
    assert (await counts(shop))["shop_bots"] == 0


# -- the example application, run as a deploy would run it -------------------------------------------


def alembic(*args: str) -> list[str]:
    return [venv_bin("alembic"), "-c", str(EXAMPLE / "alembic.ini"), *args]


def ok(*args: str) -> str:
    result = run(*args, cwd=EXAMPLE)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def foreign_keys_of_shop_bots(url: str) -> set[tuple[str, str, str]]:
    def read(conn: sa.Connection) -> set[tuple[str, str, str]]:
        return {
            (fk["constrained_columns"][0], fk["referred_table"], fk["referred_columns"][0])
            for fk in sa.inspect(conn).get_foreign_keys("shop_bots")
        }

    found: set[tuple[str, str, str]] = await on_db(url, read)
    return found


async def host_versions(url: str) -> list[str]:
    rows = await on_db(
        url, lambda c: [r[0] for r in c.exec_driver_sql("SELECT version_num FROM alembic_version")]
    )
    return list(rows)


async def test_example_way_a_our_branch_beside_the_hosts(db_url: str) -> None:
    ok(venv_bin("tgpersist"), "db", "upgrade", "--url", db_url)
    ok(*alembic("-x", f"url={db_url}", "upgrade", "head"))
    assert await table_names(db_url) == {"alembic_version"} | SHOP_TABLES | {
        f"tgpersist_{t}" for t in OUR_TABLES
    }
    assert await host_versions(db_url) == ["shop_0001"]
    assert await version_rows(db_url) == [HEAD]
    assert ("session_name", "tgpersist_sessions", "name") in await foreign_keys_of_shop_bots(db_url)

    # Both autogenerate checks are clean: the host ignores our tables, we ignore the host's.
    ok(*alembic("-x", f"url={db_url}", "check"))
    ok(venv_bin("tgpersist"), "db", "check", "--url", db_url)

    out = ok(sys.executable, "-m", "shop.app", db_url)
    assert out == "owner@example.com: bot session 'shop-bot-1' on DC 2\n"

    async with await tgpersist.open_store(db_url) as store:  # at head: open_store is happy
        acct = store.account("shop-bot-1")
        with pytest.raises(ConstraintViolation):
            await acct.session.delete()  # the host's bot still points at it (RESTRICT)

    # Tear down in reverse order: the host's history first, then ours; nothing else is touched.
    ok(*alembic("-x", f"url={db_url}", "downgrade", "base"))
    ok(venv_bin("tgpersist"), "db", "downgrade", "base", "--yes", "--url", db_url)
    assert await table_names(db_url) == {"alembic_version"}
    assert await host_versions(db_url) == []


async def test_example_way_b_our_metadata_in_the_hosts_history(db_url: str) -> None:
    # A peer stored while the host's history matched tgpersist 0002 (primary usernames in their
    # own table) keeps its usernames through the host's reviewed revision for 0003.
    ok(*alembic("-n", "one_history", "-x", f"url={db_url}", "upgrade", "shop_one_0001"))
    await on_db(
        db_url,
        lambda c: c.exec_driver_sql(
            "INSERT INTO tgpersist_sessions (name, test_mode, created_at, updated_at, lease_token) "
            "VALUES ('old', false, '2024-01-01', '2024-01-01', 0);"
        ),
    )
    await on_db(
        db_url,
        lambda c: c.exec_driver_sql(
            "INSERT INTO tgpersist_peers (session_name, peer_id, type, access_hash, updated_at) "
            "VALUES ('old', 7, 'user', 70, '2024-01-01')"
        ),
    )
    await on_db(
        db_url,
        lambda c: c.exec_driver_sql(
            "INSERT INTO tgpersist_usernames VALUES ('old', 'first', 7, 'First', 0, false), "
            "('old', 'main', 7, 'Main', 1, true)"
        ),
    )
    ok(*alembic("-n", "one_history", "-x", f"url={db_url}", "upgrade", "head"))
    assert await table_names(db_url) == {"alembic_version"} | SHOP_TABLES | {
        f"tgpersist_{t}" for t in OUR_TABLES - {"alembic_version"}
    }
    assert await host_versions(db_url) == ["shop_one_0002"]
    engine = tgpersist.create_engine(db_url)
    try:
        async with tgpersist.Store(engine) as store:
            old = await store.account("old").peers.get(7)
            assert old is not None and (old.username, old.usernames) == ("Main", ("First", "Main"))
    finally:
        await engine.dispose()
    ok(*alembic("-n", "one_history", "-x", f"url={db_url}", "downgrade", "shop_one_0001"))
    rows = await on_db(
        db_url,
        lambda c: [
            tuple(r)
            for r in c.exec_driver_sql(
                "SELECT username, position, is_primary FROM tgpersist_usernames ORDER BY position"
            )
        ],
    )
    assert [(name, position, bool(primary)) for name, position, primary in rows] == [
        ("First", 0, False),
        ("Main", 1, True),
    ]
    await on_db(db_url, lambda c: c.exec_driver_sql("DELETE FROM tgpersist_sessions"))
    ok(*alembic("-n", "one_history", "-x", f"url={db_url}", "upgrade", "head"))
    assert ("session_name", "tgpersist_sessions", "name") in await foreign_keys_of_shop_bots(db_url)

    # The host's autogenerate sees our metadata and its revision matches it exactly ...
    ok(*alembic("-n", "one_history", "-x", f"url={db_url}", "check"))
    # ... and our own check agrees that the tables match tgpersist's models.
    engine = tgpersist.create_engine(db_url)
    try:
        assert await migrate.current(engine) == ()
        out = ok(sys.executable, "-m", "shop.app", db_url)
        assert out == "owner@example.com: bot session 'shop-bot-1' on DC 2\n"
        async with tgpersist.Store(engine) as store:  # the host owns the schema: no schema check
            assert await store.list_sessions() == ["shop-bot-1"]
    finally:
        await engine.dispose()

    # Our version table, should it exist (e.g. after trying way (a)), is filtered out, not dropped.
    await on_db(
        db_url,
        lambda c: c.exec_driver_sql(
            "CREATE TABLE tgpersist_alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"
        ),
    )
    ok(*alembic("-n", "one_history", "-x", f"url={db_url}", "check"))

    ok(*alembic("-n", "one_history", "-x", f"url={db_url}", "downgrade", "base"))
    assert await table_names(db_url) == {"alembic_version", "tgpersist_alembic_version"}


async def test_example_way_a_check_catches_a_host_model_without_a_migration(db_url: str) -> None:
    ok(venv_bin("tgpersist"), "db", "upgrade", "--url", db_url)
    ok(*alembic("-x", f"url={db_url}", "upgrade", "head"))
    await on_db(db_url, lambda c: c.exec_driver_sql("ALTER TABLE shop_customers ADD COLUMN note VARCHAR(10)"))
    result = run(*alembic("-x", f"url={db_url}", "check"), cwd=EXAMPLE)
    assert result.returncode != 0
    report = result.stdout + result.stderr
    assert "remove_column" in report
    assert "'note'" in report
    assert "tgpersist_" not in report
