"""Rows out of range in the database (an older version's, a hand edit's): reading them raises
`UnreadableRow` naming the session and the field, never `ValueError`, `OverflowError` or worse."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import update

import tgpersist
from tgpersist import Account, DcAuth, Peer, PeerType, Session, Store, UpdateState
from tgpersist.errors import UnreadableRow

KEY = b"k" * 256

#: (model attribute, column, stored value, the read that meets it, the field it names)
CASES: list[tuple[str, str, Any, Callable[[Account], Awaitable[Any]], str]] = [
    ("Session", "dc_id", 99, lambda a: a.session.load(), "dc_id"),
    ("Session", "username", "no spaces allowed", lambda a: a.session.load(), "username"),
    ("Session", "port", 70_000, lambda a: a.session.load(), "port"),
    ("DcAuth", "port", 0, lambda a: a.dc_auth.list(), "port"),
    ("DcAuth", "ipv4", "not an address", lambda a: a.dc_auth.load(4), "ipv4"),
    ("UpdateState", "pts", -5, lambda a: a.updates.load_state(), "pts"),
    ("Peer", "type", "alien", lambda a: a.peers.get(101), "peer row"),
    ("Peer", "type", "alien", lambda a: a.peers.list(), "peer row"),
]


@pytest.mark.parametrize(
    ("model", "column", "value", "read", "field"),
    CASES,
    ids=[f"{c[0]}.{c[1]}-{n}" for n, c in enumerate(CASES)],
)
async def test_an_out_of_range_row_is_an_unreadable_row(
    store: Store,
    db_url: str,
    model: str,
    column: str,
    value: Any,
    read: Callable[[Account], Awaitable[Any]],
    field: str,
) -> None:
    account = store.account("old")
    await account.session.save(Session("old", dc_id=2, auth_key=KEY))
    await account.dc_auth.save(DcAuth(4, auth_key=KEY, ipv4="1.2.3.4", port=443))
    await account.updates.save_state(UpdateState(1, 2, 3, 4))
    await account.peers.save(Peer(101, PeerType.USER, 5, username="alice"))
    table = store.models.table(getattr(store.models, model))
    async with store.engine.begin() as conn:
        await conn.execute(update(table).values({column: value}))
    async with await tgpersist.open_store(db_url, peer_cache_size=0) as reader:  # no cache in the way
        with pytest.raises(UnreadableRow) as info:
            await read(reader.account("old"))
    assert (info.value.session, info.value.field) == ("old", field)
