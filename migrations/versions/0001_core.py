"""Core schema: sessions, DC auth, peers and usernames, conversations, update state, dedup keys, queue.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tgpersist.migrate import migration_placement
from tgpersist.models import Placement

revision = "0001_core"
down_revision = None
branch_labels = ("tgpersist",)
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def scoped(
    p: Placement, name: str, *columns: sa.Column, pk: tuple[str, ...] | None, extra: tuple = ()
) -> None:
    """A table owned by a session: `session_name` first, cascading from the session row."""
    table = p.table(name)
    constraints: list = [
        sa.ForeignKeyConstraint(
            ["session_name"],
            [f"{p.qualified('sessions')}.name"],
            name=f"{table}_session_name_fk",
            ondelete="CASCADE",
        )
    ]
    if pk is not None:
        constraints.append(sa.PrimaryKeyConstraint("session_name", *pk, name=f"{table}_pk"))
    op.create_table(
        table,
        sa.Column("session_name", sa.String(255), nullable=False),
        *columns,
        *constraints,
        *extra,
        schema=p.schema,
    )


def upgrade() -> None:
    p = migration_placement()
    s = p.schema
    op.create_table(
        p.table("sessions"),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("dc_id", sa.Integer()),
        sa.Column("api_id", sa.Integer()),
        sa.Column("api_hash", sa.String(64)),
        sa.Column("test_mode", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("auth_key", sa.LargeBinary()),
        sa.Column("server_address", sa.String(64)),
        sa.Column("port", sa.Integer()),
        sa.Column("user_id", sa.BigInteger()),
        sa.Column("is_bot", sa.Boolean()),
        sa.Column("first_name", sa.String(1024)),
        sa.Column("last_name", sa.String(1024)),
        sa.Column("username", sa.String(64)),
        sa.Column("date", sa.BigInteger()),
        sa.Column("server_salt", sa.BigInteger()),
        sa.Column("takeout_id", sa.BigInteger()),
        sa.Column("state", sa.LargeBinary()),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name", name=f"{p.table('sessions')}_pk"),
        schema=s,
    )
    scoped(
        p,
        "dc_auth",
        sa.Column("dc_id", sa.Integer(), nullable=False),
        sa.Column("media_only", sa.Boolean(), nullable=False),
        sa.Column("auth_key", sa.LargeBinary()),
        sa.Column("server_salt", sa.BigInteger()),
        sa.Column("ipv4", sa.String(64)),
        sa.Column("ipv6", sa.String(64)),
        sa.Column("port", sa.Integer()),
        sa.Column("test_mode", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        pk=("dc_id", "media_only"),
    )
    scoped(
        p,
        "peers",
        sa.Column("peer_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("access_hash", sa.BigInteger()),
        sa.Column("first_name", sa.String(1024)),
        sa.Column("last_name", sa.String(1024)),
        sa.Column("title", sa.String(1024)),
        sa.Column("phone_number", sa.String(33)),
        sa.Column("phone_key", sa.String(33)),
        sa.Column("is_bot", sa.Boolean()),
        sa.Column("photo_id", sa.BigInteger()),
        sa.Column("language", sa.String(32)),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        pk=("peer_id",),
    )
    op.create_index(
        f"{p.table('peers')}_session_name_ix", p.table("peers"), ["session_name", "phone_key"], schema=s
    )
    usernames = p.table("usernames")
    op.create_table(
        usernames,
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
        schema=s,
    )
    op.create_index(f"{usernames}_session_name_ix", usernames, ["session_name", "peer_id"], schema=s)
    scoped(
        p,
        "conversations",
        sa.Column("chat_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("step", sa.String(1024)),
        sa.Column("data_kind", sa.String(8)),
        sa.Column("data", sa.LargeBinary()),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP),
        pk=("chat_id", "user_id", "thread_id", "namespace"),
    )
    conversations = p.table("conversations")
    op.create_index(f"{conversations}_expires_at_ix", conversations, ["expires_at"], schema=s)
    scoped(
        p,
        "update_state",
        sa.Column("pts", sa.BigInteger(), nullable=False),
        sa.Column("qts", sa.BigInteger(), nullable=False),
        sa.Column("date", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        pk=(),
    )
    scoped(
        p,
        "channel_state",
        sa.Column("channel_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("pts", sa.BigInteger(), nullable=False),
        pk=("channel_id",),
    )
    scoped(
        p,
        "dedup_keys",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        pk=("key",),
    )
    dedup = p.table("dedup_keys")
    op.create_index(f"{dedup}_expires_at_ix", dedup, ["expires_at"], schema=s)
    queue = p.table("durable_updates")
    scoped(
        p,
        "durable_updates",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=True
        ),
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("available_at", TIMESTAMP, nullable=False),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("lease_expires_at", TIMESTAMP),
        pk=None,
        extra=(
            sa.PrimaryKeyConstraint("seq", name=f"{queue}_pk"),
            sa.UniqueConstraint("session_name", "id", name=f"{queue}_session_name_uq"),
        ),
    )
    op.create_index(
        f"{queue}_session_name_ix", queue, ["session_name", "status", "available_at", "seq"], schema=s
    )


def downgrade() -> None:
    p = migration_placement()
    for name in (
        "durable_updates",
        "dedup_keys",
        "channel_state",
        "update_state",
        "conversations",
        "usernames",
        "peers",
        "dc_auth",
        "sessions",
    ):
        op.drop_table(p.table(name), schema=p.schema)
