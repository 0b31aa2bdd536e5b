"""Encryption key ids for auth keys, session leases with fencing tokens, Telethon's sent-file cache.

Revision ID: 0002_keys_leases_files
Revises: 0001_core
Create Date: 2026-11-23

Existing rows keep their values: the new columns are nullable or have a server default (token 0, no
owner, plaintext key), and the new table starts empty.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tgpersist.migrate import migration_placement

revision = "0002_keys_leases_files"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    p = migration_placement()
    # Plain ADD COLUMN (no batch table copy): SQLite supports it, and `--sql` needs no reflection.
    sessions = p.table("sessions")
    op.add_column(sessions, sa.Column("auth_key_id", sa.String(32)), schema=p.schema)
    op.add_column(sessions, sa.Column("lease_owner", sa.String(255)), schema=p.schema)
    op.add_column(
        sessions,
        sa.Column("lease_token", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        schema=p.schema,
    )
    op.add_column(sessions, sa.Column("lease_expires", sa.Double()), schema=p.schema)
    op.add_column(p.table("dc_auth"), sa.Column("auth_key_id", sa.String(32)), schema=p.schema)
    files = p.table("sent_files")
    op.create_table(
        files,
        sa.Column("session_name", sa.String(255), nullable=False),
        sa.Column("md5_digest", sa.LargeBinary(16), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("type", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("access_hash", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_name", "md5_digest", "file_size", "type", name=f"{files}_pk"),
        sa.ForeignKeyConstraint(
            ["session_name"],
            [f"{p.qualified('sessions')}.name"],
            name=f"{files}_session_name_fk",
            ondelete="CASCADE",
        ),
        schema=p.schema,
    )


def downgrade() -> None:
    p = migration_placement()
    op.drop_table(p.table("sent_files"), schema=p.schema)
    with op.batch_alter_table(p.table("dc_auth"), schema=p.schema) as batch:
        batch.drop_column("auth_key_id")
    with op.batch_alter_table(p.table("sessions"), schema=p.schema) as batch:
        batch.drop_column("lease_expires")
        batch.drop_column("lease_token")
        batch.drop_column("lease_owner")
        batch.drop_column("auth_key_id")
