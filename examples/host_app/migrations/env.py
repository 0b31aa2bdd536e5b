"""The shop's Alembic environment, for both supported ways of living beside tgpersist.

(a) `[alembic]` section: tgpersist's tables belong to tgpersist's own migrations (their own version
    table, `tgpersist_alembic_version`). Our autogenerate target is the shop's metadata only, and
    `include_name` hides every `tgpersist_` table, so autogenerate never proposes to create or drop them.
(b) `[one_history]` section: the shop's revisions own tgpersist's tables too. The autogenerate target
    is the shop's metadata plus `tgpersist.models.metadata`; only tgpersist's version table is hidden
    (it exists if tgpersist's own migrations ever ran here, and is not ours to drop).
"""

from __future__ import annotations

import asyncio
import os
from typing import Literal

from alembic import context
from shop.models import Base
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.types import TypeDecorator

import tgpersist
from tgpersist.models import default_models

config = context.config
ONE_HISTORY = config.config_ini_section == "one_history"
TGPERSIST_PREFIX = default_models.placement.prefix
TGPERSIST_VERSION_TABLE = default_models.placement.version_table

# tgpersist's metadata first, so that its tables are created before the shop's keys point at them.
target_metadata = [default_models.metadata, Base.metadata] if ONE_HISTORY else Base.metadata


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Which reflected database tables autogenerate compares against the target metadata."""
    if type_ != "table" or name is None:
        return True
    if name == TGPERSIST_VERSION_TABLE:
        return False
    if name.startswith(TGPERSIST_PREFIX):
        return ONE_HISTORY
    return True


def render_item(type_: str, obj: object, autogen_context: object) -> str | Literal[False]:
    """Render tgpersist's column types by what they store (`sa.DateTime(timezone=True)`), so the
    shop's revisions never import tgpersist internals."""
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


def url() -> str:
    x = context.get_x_argument(as_dictionary=True)
    return x.get("url") or os.environ.get("SHOP_DB_URL") or "sqlite+aiosqlite:///shop.db"


def configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        include_name=include_name,
        compare_type=True,
        render_item=render_item,
        render_as_batch=url().startswith("sqlite"),
        **kwargs,
    )


def run_on(connection: Connection) -> None:
    configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    engine = create_async_engine(url())
    tgpersist.configure_engine(engine)  # SQLite: the same connection set-up tgpersist uses
    try:
        async with engine.connect() as conn:
            # SQLite: foreign keys off while batch migrations copy tables (a copy of tgpersist_peers
            # would otherwise cascade-delete the usernames that refer to it).
            conn = await conn.execution_options(**tgpersist.MIGRATION_OPTIONS)
            await conn.run_sync(run_on)
            await conn.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    configure(url=url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_online())
