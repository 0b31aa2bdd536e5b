"""tgpersist's Alembic environment: async engines, our own version table, our placement.

Used three ways: `alembic upgrade head` from a checkout (url from `-x url=`, `TGPERSIST_URL` or the
SQLite default); `tgpersist.migrate` passing an open connection in `config.attributes["connection"]`;
and offline `--sql` generation.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import MetaData, Table
from sqlalchemy.engine import Connection

from tgpersist import migrate
from tgpersist.errors import UnsupportedDatabase
from tgpersist.models import Placement, declare_models
from tgpersist.sql import urls

DEFAULT_URL = "sqlite+aiosqlite:///tgpersist.db"

config = context.config


def placement() -> Placement:
    found = config.attributes.get(migrate.PLACEMENT)
    if not isinstance(found, Placement):
        x = context.get_x_argument(as_dictionary=True)
        found = Placement(
            prefix=x.get("prefix") or os.environ.get("TGPERSIST_TABLE_PREFIX") or "tgpersist_",
            schema=x.get("schema") or os.environ.get("TGPERSIST_SCHEMA") or None,
        )
        config.attributes[migrate.PLACEMENT] = found
    return found


def url() -> str:
    x = context.get_x_argument(as_dictionary=True)
    return (
        x.get("url")
        or os.environ.get("TGPERSIST_URL")
        or config.get_main_option("sqlalchemy.url")
        or DEFAULT_URL
    )


class Downgrades:
    """Notices a downgrade that reached base, so that our version table can go with our other tables."""

    def __init__(self) -> None:
        self.reached_base = False

    def __call__(self, *, step: object, heads: set[str], **_: object) -> None:
        if not getattr(step, "is_upgrade", True) and not heads:
            self.reached_base = True


def configure(p: Placement, is_sqlite: bool, **kwargs: object) -> None:
    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        if type_ == "schema":
            return name == p.schema
        if type_ == "table":
            return bool(name and name.startswith(p.prefix) and name != p.version_table)
        return True

    context.configure(
        target_metadata=declare_models(p).metadata,
        version_table=p.version_table,
        version_table_schema=p.schema,
        render_as_batch=is_sqlite,
        compare_type=True,
        include_name=include_name,
        include_schemas=p.schema is not None,
        **kwargs,
    )


def run_on(connection: Connection) -> None:
    p = placement()
    if connection.dialect.name == "postgresql":
        # Concurrent deploys: the first one migrates, the others wait here and then find nothing to do.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({migrate.ADVISORY_LOCK})")
        if p.schema:
            connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{p.schema}"')
    elif p.schema:
        raise UnsupportedDatabase("a schema placement needs PostgreSQL")
    downgrades = Downgrades()
    configure(p, connection.dialect.name == "sqlite", connection=connection, on_version_apply=downgrades)
    with context.begin_transaction():
        context.run_migrations()
        if downgrades.reached_base:
            # `downgrade base` leaves no tgpersist table behind, not even an empty version table.
            Table(p.version_table, MetaData(), schema=p.schema).drop(connection, checkfirst=True)


def run_offline() -> None:
    target = urls.translate(url()).url  # a pasted spelling (postgres://, ?sslmode=...) as for online runs
    configure(placement(), target.get_backend_name() == "sqlite", url=target, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
elif isinstance(config.attributes.get(migrate.CONNECTION), Connection):
    run_on(config.attributes[migrate.CONNECTION])
else:
    asyncio.run(migrate.in_transaction(url(), run_on))
