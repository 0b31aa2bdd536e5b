"""Primary usernames in the peers row; partial phone and username indexes.

Revision ID: 0003_primary_username
Revises: 0002_keys_leases_files
Create Date: 2026-11-23

A peer's primary username moves from the usernames table into its own row (`username`,
`username_key`, unique per account); the usernames table keeps only the other active usernames, at
their positions in `Peer.usernames` (the primary's position is the one they leave free). Most peers
have one username or none, so a peer write touches one table. The phone index now covers only rows
with a phone. Every stored username survives, in both directions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tgpersist import data_migrations
from tgpersist.migrate import migration_placement
from tgpersist.models import Placement

revision = "0003_primary_username"
down_revision = "0002_keys_leases_files"
branch_labels = None
depends_on = None


def usernames_at_0002(p: Placement) -> sa.Table:
    """The usernames table as revisions 0001-0002 left it (for batch copies without reflection)."""
    usernames = p.table("usernames")
    return sa.Table(
        usernames,
        sa.MetaData(),
        sa.Column("session_name", sa.String(255), nullable=False),
        sa.Column("username_key", sa.String(64), nullable=False),
        sa.Column("peer_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("session_name", "username_key", name=f"{usernames}_pk"),
        sa.ForeignKeyConstraint(
            ["session_name", "peer_id"],
            [f"{p.qualified('peers')}.session_name", f"{p.qualified('peers')}.peer_id"],
            name=f"{usernames}_session_name_fk",
            ondelete="CASCADE",
        ),
        sa.Index(f"{usernames}_session_name_ix", "session_name", "peer_id"),
        schema=p.schema,
    )


def not_null(column: str) -> sa.TextClause:
    return sa.text(f"{column} IS NOT NULL")


def upgrade() -> None:
    p = migration_placement()
    peers_name = p.table("peers")
    op.add_column(peers_name, sa.Column("username", sa.String(64)), schema=p.schema)
    op.add_column(peers_name, sa.Column("username_key", sa.String(64)), schema=p.schema)

    data_migrations.primary_usernames_into_peers(p)
    with op.batch_alter_table(p.table("usernames"), schema=p.schema, copy_from=usernames_at_0002(p)) as batch:
        batch.drop_column("is_primary")

    op.drop_index(f"{peers_name}_session_name_ix", peers_name, schema=p.schema)
    for column, unique in (("phone_key", False), ("username_key", True)):
        op.create_index(
            f"{peers_name}_{column.removesuffix('_key')}_ix",
            peers_name,
            ["session_name", column],
            unique=unique,
            schema=p.schema,
            sqlite_where=not_null(column),
            postgresql_where=not_null(column),
        )


def downgrade() -> None:
    p = migration_placement()
    peers_name = p.table("peers")
    for column in ("username", "phone"):
        op.drop_index(f"{peers_name}_{column}_ix", peers_name, schema=p.schema)
    op.create_index(
        f"{peers_name}_session_name_ix", peers_name, ["session_name", "phone_key"], schema=p.schema
    )

    usernames_name = p.table("usernames")
    op.add_column(
        usernames_name,
        sa.Column("is_primary", sa.Boolean(), nullable=False, server_default=sa.false()),
        schema=p.schema,
    )
    data_migrations.primary_usernames_out_of_peers(p)
    with op.batch_alter_table(usernames_name, schema=p.schema) as batch:
        batch.alter_column("is_primary", server_default=None, existing_type=sa.Boolean())
    with op.batch_alter_table(peers_name, schema=p.schema) as batch:
        batch.drop_column("username_key")
        batch.drop_column("username")
