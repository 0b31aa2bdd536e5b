"""Settings each direct PostgreSQL connection of a tgpersist engine starts its session with, so that a
client that stops answering cannot hold the server's locks and slots for hours.

- `idle_in_transaction_session_timeout`: a transaction left idle (its process frozen by SIGSTOP or a
  debugger, its host gone) is ended by the server after 15 s, releasing its row locks, so a takeover
  of a session's lease (default TTL 30 s) gets through within one `acquire`. tgpersist's own
  transactions are never idle that long (one that was, its process starved, is re-run: the
  connection died before COMMIT); a host's transaction on a tgpersist engine must not be either.
- `tcp_keepalives_*`: the server notices a vanished client within about a minute (not the kernel's
  two hours), freeing its connection slot.

Set with one `set_config` statement when the pool opens a connection (not as startup parameters,
which poolers and proxies refuse). Not in pooler mode (`?pgbouncer=true`), where session state would
reach other clients: set them on the role (`ALTER ROLE ... SET`) or the pooler (PgBouncer's
`idle_transaction_timeout`). A setting the URL gives (`?options=-c name=value`) is left as given.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tgpersist.sql import pooler_settings

#: Setting name -> value for every direct connection (unless the URL sets it).
DEFAULTS = {
    "idle_in_transaction_session_timeout": "15s",
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
}


def install(engine: AsyncEngine, given: Iterable[str] = ()) -> None:
    """Start every new connection of `engine` with `DEFAULTS`, but for the names in `given`."""
    skipped = set(given)
    settings = {name: value for name, value in DEFAULTS.items() if name not in skipped}
    if not settings:
        return
    sql, values = pooler_settings.set_config(settings, local=False)

    def apply(dbapi_connection: Any, record: Any) -> None:
        # Through SQLAlchemy's DB-API adapter, so that a connection lost here fails as any lost
        # connection does (a `DBAPIError`, which `Database.run` retries on a new connection), and
        # committed: a session-level setting made in a transaction that rolls back is undone.
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(sql, values)
        finally:
            cursor.close()
        dbapi_connection.commit()

    event.listen(engine.sync_engine, "connect", apply)
