"""tgpersist: the persistent state of Telegram MTProto clients on SQLite or PostgreSQL."""

from tgpersist.domain import (
    ChannelState,
    Conversation,
    DcAuth,
    DurableUpdate,
    Peer,
    PeerKind,
    PeerType,
    QueueCounts,
    Session,
    SessionSummary,
    UpdateState,
    UpdateStatus,
    from_dialog_id,
    to_dialog_id,
)
from tgpersist.errors import (
    DatabaseUnavailable,
    EncryptionError,
    InvalidArgument,
    InvalidSessionString,
    LeaseLost,
    SchemaOutOfDate,
    SessionBusy,
    TgPersistError,
    UnsupportedDatabase,
    UnsupportedSessionFile,
)
from tgpersist.repositories import QueuePolicy
from tgpersist.repositories.files import SentFile
from tgpersist.repositories.lease import LeaseInfo, SessionLease
from tgpersist.sql.engines import MIGRATION_OPTIONS, configure_engine, create_engine
from tgpersist.store import Account, Store, open_store

__version__ = "0.1.0"

__all__ = [
    "MIGRATION_OPTIONS",
    "Account",
    "ChannelState",
    "Conversation",
    "DatabaseUnavailable",
    "DcAuth",
    "DurableUpdate",
    "EncryptionError",
    "InvalidArgument",
    "InvalidSessionString",
    "LeaseInfo",
    "LeaseLost",
    "Peer",
    "PeerKind",
    "PeerType",
    "QueueCounts",
    "QueuePolicy",
    "SchemaOutOfDate",
    "SentFile",
    "Session",
    "SessionBusy",
    "SessionLease",
    "SessionSummary",
    "Store",
    "TgPersistError",
    "UnsupportedDatabase",
    "UnsupportedSessionFile",
    "UpdateState",
    "UpdateStatus",
    "configure_engine",
    "create_engine",
    "from_dialog_id",
    "open_store",
    "to_dialog_id",
]
