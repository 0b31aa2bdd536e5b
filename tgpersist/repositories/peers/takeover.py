"""Username takeover on PostgreSQL without deadlocks: lock everything a batch will touch, in one
global order, before changing anything.

A `save_many` batch writes its peers' rows and takes its usernames from whichever peers hold them.
Left to itself, PostgreSQL locks those rows one by one as the statements reach them, and two batches
that trade usernames wait for each other: the unique index on usernames makes a writer wait for the
transaction that holds an uncommitted copy of the same username, in whatever order the rows come.
Measured before this module: 62 deadlocks a minute with 4 processes moving usernames.

So a batch first takes, in this order (all held until its transaction ends):

1. Advisory locks, one statement: the account's lock (shared; exclusive for batches with more than
   `ACCOUNT_LOCK_ITEMS` ids and usernames, which then take no others, so that a bulk import does not
   fill PostgreSQL's lock table), then one exclusive lock per peer id and per username of the batch,
   by ascending lock id. A process whose item locks of an account had to wait (`CONTENDED_SECONDS`)
   takes the account's exclusive lock alone for its batches of that account during the next
   `ESCALATED_SECONDS`: when batches overlap that much they run one at a time anyway, and one lock
   spares them the convoys of hundreds of item locks (measured with 8 processes moving usernames
   between 400 peers: 130 and 80 batches/s staying and moving, against 90 and 52 with item locks).
2. Row locks, one `SELECT ... ORDER BY peer_id FOR UPDATE`: the batch's stored peers and every peer
   that holds one of its usernames (as primary or in the usernames table).

Then it writes: only rows locked in step 2, and new rows whose id or username step 1 locked.

Why no cycle of waits can form: every lock of step 1 is taken in one total order (account first, then
lock id), and a transaction takes no step-1 lock after its first step-2 lock; every row lock of step 2
is taken in peer id order. A write of step 3 waits for nobody: a row it updates is locked already; a
new peer id or a username it inserts can collide only with a transaction that writes the same id or
username, which needs the same step-1 lock, so one of the two has committed before the other starts
writing. A holder that took a username after our step-2 snapshot must have held that username's lock,
which we held first — so it committed before our step-2 statement began, which therefore saw it.
A wait-for graph whose edges all point up one total order has no cycle. (Writers that do not follow
the protocol — a session deleted with all its rows, a host's own SQL — can still deadlock with a
batch; PostgreSQL aborts one of them and `Database.run` re-runs it.)
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

#: Ids plus usernames of a batch above which it locks the whole account instead of each item.
ACCOUNT_LOCK_ITEMS = 512
#: An item-lock statement that took longer met other batches' locks (uncontended: about 1 ms) ...
CONTENDED_SECONDS = 0.02
#: ... and this process's batches of that account then lock the whole account for this long.
ESCALATED_SECONDS = 1.0


def lock_id(*parts: str | int) -> int:
    """A signed 64-bit advisory lock key for `parts` (collisions only make two batches take turns)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class TakeoverLocks:
    """The two lock statements of one placement (see the module docstring)."""

    def __init__(self, peers: Table, names: Table, sa_dialect: Dialect) -> None:
        #: Account -> monotonic time until which its batches take the account's exclusive lock.
        self.escalated: dict[str, float] = {}
        preparer = sa_dialect.identifier_preparer
        self.placement = preparer.format_table(peers)
        self.item_locks = (
            "SELECT CASE WHEN u.o = 1 THEN pg_advisory_xact_lock_shared(u.k) "
            "ELSE pg_advisory_xact_lock(u.k) END FROM unnest($1::bigint[]) WITH ORDINALITY AS u(k, o)"
        )
        self.account_lock = "SELECT pg_advisory_xact_lock($1::bigint)"
        names_table = preparer.format_table(names)
        self.rows = (
            f"SELECT p.peer_id, p.username_key FROM {self.placement} AS p WHERE p.session_name = $1 AND "
            "(p.peer_id = ANY($2::bigint[]) OR p.username_key = ANY($3::varchar[]) OR p.peer_id IN "
            f"(SELECT n.peer_id FROM {names_table} AS n WHERE n.session_name = $1 "
            "AND n.username_key = ANY($3::varchar[]))) ORDER BY p.peer_id FOR UPDATE OF p"
        )

    def item_lock_ids(self, session: str, ids: Iterable[int], keys: Iterable[str]) -> list[int]:
        """The account's lock id, then the batch's peer id and username lock ids, ascending."""
        items = {lock_id(self.placement, session, "peer", i) for i in ids}
        items.update(lock_id(self.placement, session, "name", k) for k in keys)
        return [lock_id(self.placement, session), *sorted(items)]

    async def acquire(
        self, conn: AsyncConnection, session: str, ids: list[int], keys: list[str]
    ) -> dict[str, int]:
        """Take steps 1 and 2 in the caller's transaction; returns who holds each username that is
        a primary one now (username key -> peer id), as seen under the locks."""
        now = time.monotonic()
        if len(ids) + len(keys) > ACCOUNT_LOCK_ITEMS or self.escalated.get(session, 0.0) > now:
            await conn.exec_driver_sql(self.account_lock, (lock_id(self.placement, session),))
        else:
            await conn.exec_driver_sql(self.item_locks, (self.item_lock_ids(session, ids, keys),))
            done = time.monotonic()
            if done - now > CONTENDED_SECONDS:
                self.escalated[session] = done + ESCALATED_SECONDS
            elif session in self.escalated:
                del self.escalated[session]
        rows: list[Any] = list(await conn.exec_driver_sql(self.rows, (session, ids, keys)))
        return {key: peer_id for peer_id, key in rows if key is not None}
