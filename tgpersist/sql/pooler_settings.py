"""Settings that travel inside each transaction (`set_config(name, value, true)`, i.e. `SET LOCAL`).

Behind a transaction pooler a `SET` would stay on a server connection that another client gets next,
and startup parameters (libpq's `options`) are refused by PgBouncer; so in pooler mode the URL's
`options`/`search_path` are applied at the start of every transaction, at the cost of one statement.
"""

from __future__ import annotations

import weakref

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

_SETTINGS: weakref.WeakKeyDictionary[Engine, tuple[str, tuple[str, ...]]] = weakref.WeakKeyDictionary()


def set_config(settings: dict[str, str], *, local: bool) -> tuple[str, tuple[str, ...]]:
    """One `SELECT set_config(...), ...` statement and its values for `settings` (name -> value):
    for the transaction (`local`, as `SET LOCAL`) or for the session."""
    flag = "true" if local else "false"
    calls = ", ".join(f"set_config(${2 * i + 1}, ${2 * i + 2}, {flag})" for i in range(len(settings)))
    return f"SELECT {calls}", tuple(v for pair in settings.items() for v in pair)


def install(engine: AsyncEngine, settings: dict[str, str]) -> None:
    """Apply `settings` (name -> value) at the start of every transaction on `engine`."""
    sql, values = set_config(settings, local=True)
    _SETTINGS[engine.sync_engine] = (sql, values)

    def apply(conn: Connection) -> None:
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return  # no transaction to hold them (reads.reader_for sends no reads this way then)
        conn.exec_driver_sql(sql, values)

    event.listen(engine.sync_engine, "begin", apply)


def settings_of(engine: AsyncEngine) -> dict[str, str]:
    """The per-transaction settings installed on `engine` (empty: none)."""
    found = _SETTINGS.get(engine.sync_engine)
    if found is None:
        return {}
    values = found[1]
    return dict(zip(values[::2], values[1::2], strict=True))
