"""SQLAlchemy 2 declarative models, declared once per `Placement` (table prefix and schema).

The columns live on typed mixins; `declare_models()` binds them to a fresh `MetaData` with our naming
convention and the placement's table names. Only the repositories and migrations use these classes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from sqlalchemy.types import TypeDecorator

from tgpersist.clock import as_utc
from tgpersist.errors import InvalidArgument

#: Short, deterministic constraint names that stay under PostgreSQL's 63-character identifier limit.
NAMING_CONVENTION = {
    "ix": "%(table_name)s_%(column_0_name)s_ix",
    "uq": "%(table_name)s_%(column_0_name)s_uq",
    "ck": "%(table_name)s_%(constraint_name)s_ck",
    "fk": "%(table_name)s_%(column_0_name)s_fk",
    "pk": "%(table_name)s_pk",
}

_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,19}")
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class Placement:
    """Where our tables live: a table-name prefix and, on PostgreSQL, an optional schema."""

    prefix: str = "tgpersist_"
    schema: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not _PREFIX.fullmatch(self.prefix):
            raise InvalidArgument(
                "prefix", "must be 1-20 characters of a-z, 0-9 and _, starting with a letter"
            )
        if self.schema is not None and (
            not isinstance(self.schema, str) or not _SCHEMA.fullmatch(self.schema)
        ):
            raise InvalidArgument("schema", "must be a lower-case SQL identifier of at most 63 characters")

    def table(self, name: str) -> str:
        return self.prefix + name

    def qualified(self, name: str) -> str:
        """`schema.table` (or just the table) for foreign-key targets."""
        table = self.table(name)
        return f"{self.schema}.{table}" if self.schema else table

    @property
    def version_table(self) -> str:
        return self.prefix + "alembic_version"


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back timezone-aware UTC (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite one step to the text SQLAlchemy stores (see `_sqlite_text`)."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return _sqlite_text


def _sqlite_text(value: datetime | None) -> str | None:
    """A timestamp as the text SQLAlchemy's SQLite DATETIME stores (always with microseconds), in one
    step: a third of the cost of UTC conversion plus SQLAlchemy's `%`-formatting, which showed as the
    largest item of a group-committed batch of enqueues. One function for every such column, so
    that a batch converts a timestamp its rows share once (`writes.rows`)."""
    if value is None:
        return None
    return as_utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


#: A 64-bit integer that is also SQLite's rowid alias when used as an autoincrement primary key.
RowId = BigInteger().with_variant(Integer(), "sqlite")


def partial_index(name: str, column: str, *, unique: bool = False) -> Index:
    """An index on (session_name, `column`) over the rows where `column` is set (most peers have no
    phone; a partial index is smaller, and writing a row without the value does not touch it)."""
    where = text(f"{column} IS NOT NULL")
    return Index(name, "session_name", column, unique=unique, sqlite_where=where, postgresql_where=where)


class _Placed:
    """Mixin plumbing: every model class knows its placement, set by `declare_models`."""

    __placement__: ClassVar[Placement]


class _Scoped(_Placed):
    """Rows owned by one session: `session_name` references the session and cascades its deletion."""

    __session_in_pk__: ClassVar[bool] = True

    @declared_attr
    def session_name(cls) -> Mapped[str]:
        return mapped_column(
            String(255),
            ForeignKey(cls.__placement__.qualified("sessions") + ".name", ondelete="CASCADE"),
            primary_key=cls.__session_in_pk__,
            nullable=False,
            sort_order=-1,  # first column, so the primary key index serves per-session scans
        )


class SessionColumns(_Placed):
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    dc_id: Mapped[int | None] = mapped_column(Integer)
    api_id: Mapped[int | None] = mapped_column(Integer)
    api_hash: Mapped[str | None] = mapped_column(String(64))
    test_mode: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    auth_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    server_address: Mapped[str | None] = mapped_column(String(64))
    port: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    is_bot: Mapped[bool | None] = mapped_column(Boolean)
    first_name: Mapped[str | None] = mapped_column(String(1024))
    last_name: Mapped[str | None] = mapped_column(String(1024))
    username: Mapped[str | None] = mapped_column(String(64))
    date: Mapped[int | None] = mapped_column(BigInteger)
    server_salt: Mapped[int | None] = mapped_column(BigInteger)
    takeout_id: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Revision 0002: encryption key id of auth_key (None = plaintext) and the session lease.
    auth_key_id: Mapped[str | None] = mapped_column(String(32))
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_token: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    lease_expires: Mapped[float | None] = mapped_column(Double)


class DcAuthColumns(_Scoped):
    dc_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    media_only: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    auth_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    server_salt: Mapped[int | None] = mapped_column(BigInteger)
    ipv4: Mapped[str | None] = mapped_column(String(64))
    ipv6: Mapped[str | None] = mapped_column(String(64))
    port: Mapped[int | None] = mapped_column(Integer)
    test_mode: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Revision 0002.
    auth_key_id: Mapped[str | None] = mapped_column(String(32))


class PeerColumns(_Scoped):
    peer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(16))
    access_hash: Mapped[int | None] = mapped_column(BigInteger)
    first_name: Mapped[str | None] = mapped_column(String(1024))
    last_name: Mapped[str | None] = mapped_column(String(1024))
    title: Mapped[str | None] = mapped_column(String(1024))
    phone_number: Mapped[str | None] = mapped_column(String(33))
    phone_key: Mapped[str | None] = mapped_column(String(33))
    is_bot: Mapped[bool | None] = mapped_column(Boolean)
    photo_id: Mapped[int | None] = mapped_column(BigInteger)
    language: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Revision 0003: the primary username lives in the peer's row (`username_key` is its lower case);
    # only a peer's other active usernames (collectibles) go to the usernames table.
    username: Mapped[str | None] = mapped_column(String(64))
    username_key: Mapped[str | None] = mapped_column(String(64))

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        table = cls.__placement__.table("peers")
        return (
            partial_index(f"{table}_phone_ix", "phone_key"),
            partial_index(f"{table}_username_ix", "username_key", unique=True),
        )


class UsernameColumns(_Placed):
    """A peer's active username other than its primary one, at `position` in `Peer.usernames`.

    `username_key` (lower case) is unique per account here, and the repository keeps it unique across
    this table and the peers' primary usernames too.
    """

    session_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    username_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    peer_id: Mapped[int] = mapped_column(BigInteger)
    username: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        peers = cls.__placement__.qualified("peers")
        return (
            ForeignKeyConstraint(
                ["session_name", "peer_id"],
                [f"{peers}.session_name", f"{peers}.peer_id"],
                ondelete="CASCADE",
            ),
            Index(None, "session_name", "peer_id"),
        )


class ConversationColumns(_Scoped):
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    thread_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    namespace: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    step: Mapped[str | None] = mapped_column(String(1024))
    data_kind: Mapped[str | None] = mapped_column(String(8))
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)


class UpdateStateColumns(_Scoped):
    pts: Mapped[int] = mapped_column(BigInteger)
    qts: Mapped[int] = mapped_column(BigInteger)
    date: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)


class ChannelStateColumns(_Scoped):
    channel_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    pts: Mapped[int] = mapped_column(BigInteger)


class DedupKeyColumns(_Scoped):
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class DurableUpdateColumns(_Scoped):
    """Queue rows; `seq` orders them, (session_name, id) makes enqueueing idempotent."""

    __session_in_pk__ = False

    seq: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(255))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    available_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (
            UniqueConstraint("session_name", "id"),
            Index(None, "session_name", "status", "available_at", "seq"),
        )


class SentFileColumns(_Scoped):
    """Telethon's sent-file cache: media already uploaded, by content digest (revision 0002)."""

    md5_digest: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    file_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    id: Mapped[int] = mapped_column(BigInteger)
    access_hash: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True)
class Models:
    """The model classes and `MetaData` of one placement."""

    placement: Placement
    metadata: MetaData
    Session: type[SessionColumns]
    DcAuth: type[DcAuthColumns]
    Peer: type[PeerColumns]
    Username: type[UsernameColumns]
    Conversation: type[ConversationColumns]
    UpdateState: type[UpdateStateColumns]
    ChannelState: type[ChannelStateColumns]
    DedupKey: type[DedupKeyColumns]
    DurableUpdate: type[DurableUpdateColumns]
    SentFile: type[SentFileColumns]

    def table(self, model: type[_Placed]) -> Table:
        table = model.__table__  # type: ignore[attr-defined]
        assert isinstance(table, Table)
        return table


@functools.cache
def declare_models(placement: Placement = Placement()) -> Models:
    """Declare every model for `placement` on a fresh MetaData (cached: one set per placement)."""

    class Base(DeclarativeBase):
        metadata = MetaData(naming_convention=NAMING_CONVENTION, schema=placement.schema)

    def model(name: str, columns: type[_Placed]) -> Any:
        attrs = {"__tablename__": placement.table(name), "__placement__": placement}
        return type(f"{columns.__name__.removesuffix('Columns')}Row", (columns, Base), attrs)

    return Models(
        placement=placement,
        metadata=Base.metadata,
        Session=model("sessions", SessionColumns),
        DcAuth=model("dc_auth", DcAuthColumns),
        Peer=model("peers", PeerColumns),
        Username=model("usernames", UsernameColumns),
        Conversation=model("conversations", ConversationColumns),
        UpdateState=model("update_state", UpdateStateColumns),
        ChannelState=model("channel_state", ChannelStateColumns),
        DedupKey=model("dedup_keys", DedupKeyColumns),
        DurableUpdate=model("durable_updates", DurableUpdateColumns),
        SentFile=model("sent_files", SentFileColumns),
    )


#: The default placement's models; embed `metadata` in a host's autogenerate target.
default_models = declare_models()
metadata = default_models.metadata
