"""PostgreSQL: a NOTIFY when updates are enqueued, so that waiting workers wake at once.

Revision ID: 0005_queue_notify
Revises: 0003_primary_username
Create Date: 2026-12-01

A statement-level AFTER INSERT trigger on the queue table sends one `pg_notify` per account the
statement enqueued for: channel = the queue table's name (with the placement's prefix), payload =
the session name. NOTIFY is delivered at commit and folded per transaction, so a batch of inserts
costs one notification per account. SQLite has no NOTIFY: this revision does nothing there (its
workers poll).
"""

from __future__ import annotations

from alembic import op

from tgpersist.migrate import migration_placement
from tgpersist.models import Placement

revision = "0005_queue_notify"
down_revision = "0004_aiogram_namespaces"
branch_labels = None
depends_on = None


def names(p: Placement) -> tuple[str, str, str]:
    """The queue table, the trigger function and the trigger, quoted and qualified as needed."""
    schema = f'"{p.schema}".' if p.schema else ""
    queue = p.table("durable_updates")
    return f'{schema}"{queue}"', f'{schema}"{p.table("notify_enqueued")}"', f'"{queue}_notify"'


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    table, function, trigger = names(migration_placement())
    op.execute(
        f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "PERFORM pg_notify(TG_TABLE_NAME, s.session_name) "
        "FROM (SELECT DISTINCT session_name FROM enqueued) AS s; "
        "RETURN NULL; END $$"
    )
    op.execute(
        f"CREATE TRIGGER {trigger} AFTER INSERT ON {table} REFERENCING NEW TABLE AS enqueued "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    table, function, trigger = names(migration_placement())
    op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {function}()")
