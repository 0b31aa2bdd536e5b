"""Way (a): the shop's customers and bots; tgpersist's own migrations create tgpersist_sessions first.

Revision ID: shop_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "shop_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shop_customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="shop_customers_pk"),
        sa.UniqueConstraint("email", name="shop_customers_email_uq"),
    )
    op.create_table(
        "shop_bots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("session_name", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["shop_customers.id"], name="shop_bots_customer_id_fk", ondelete="CASCADE"
        ),
        # Into tgpersist's table: run `tgpersist db upgrade` before this revision.
        sa.ForeignKeyConstraint(
            ["session_name"],
            ["tgpersist_sessions.name"],
            name="shop_bots_session_name_fk",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name="shop_bots_pk"),
        sa.UniqueConstraint("session_name", name="shop_bots_session_name_uq"),
    )


def downgrade() -> None:
    op.drop_table("shop_bots")
    op.drop_table("shop_customers")
