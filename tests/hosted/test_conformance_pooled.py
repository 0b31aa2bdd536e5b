"""The whole conformance suite through PgBouncer: transaction pooling with `?pgbouncer=true`, and
session pooling with the defaults. One database per class; each test uses fresh account names."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import tgpersist
from tests.conftest import Databases
from tests.hosted.conftest import through
from tgpersist.sql import engines
from tgpersist.testing import StoreConformance


@pytest.fixture(scope="class")
async def shared_direct_db(postgres_server: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    dbs = Databases("postgresql", request.config.rootpath, request)
    yield await dbs.new()
    await dbs.drop_all()


class TestTransactionPooling(StoreConformance):
    @pytest.fixture
    async def store(self, shared_direct_db: str, transaction_pooler: str) -> AsyncIterator[tgpersist.Store]:
        async with await tgpersist.open_store(through(transaction_pooler, shared_direct_db)) as store:
            assert engines.behind_pooler(store.engine)
            yield store


class TestSessionPooling(StoreConformance):
    @pytest.fixture
    async def store(self, shared_direct_db: str, session_pooler: str) -> AsyncIterator[tgpersist.Store]:
        async with await tgpersist.open_store(through(session_pooler, shared_direct_db)) as store:
            assert not engines.behind_pooler(store.engine)
            yield store
