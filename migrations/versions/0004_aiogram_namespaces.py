"""aiogram conversation keys in an unambiguous form.

Revision ID: 0004_aiogram_namespaces
Revises: 0003_primary_username
Create Date: 2026-12-01

`TgPersistStorage` keyed a conversation ``f"{destiny}|{business_connection_id or ''}"``, so
``("a", "b|")`` and ``("a|b", None)`` shared a row, and so did an empty business connection and none.
It now escapes ``\\`` and ``|`` in both parts (`tgpersist.adapters.aiogram.namespace`). No column
changes: the rows of the adapter's default accounts (``aiogram:<bot id>``) get their new keys; most
keep theirs. With a custom `account=` format, run `tgpersist.data_migrations.aiogram_namespaces_escaped`
with that session pattern.
"""

from __future__ import annotations

from tgpersist import data_migrations
from tgpersist.migrate import migration_placement

revision = "0004_aiogram_namespaces"
down_revision = "0003_primary_username"
branch_labels = None
depends_on = None


def upgrade() -> None:
    data_migrations.aiogram_namespaces_escaped(migration_placement())


def downgrade() -> None:
    data_migrations.aiogram_namespaces_unescaped(migration_placement())
