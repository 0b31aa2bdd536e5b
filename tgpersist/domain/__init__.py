"""Plain dataclasses for everything tgpersist stores; no ORM types leak past the repositories."""

from tgpersist.domain.conversation import Conversation
from tgpersist.domain.peer import Peer, PeerKind, PeerType, from_dialog_id, to_dialog_id
from tgpersist.domain.session import DcAuth, Session
from tgpersist.domain.stats import QueueCounts, SessionSummary
from tgpersist.domain.updates import ChannelState, DurableUpdate, UpdateState, UpdateStatus

__all__ = [
    "ChannelState",
    "Conversation",
    "DcAuth",
    "DurableUpdate",
    "Peer",
    "PeerKind",
    "PeerType",
    "QueueCounts",
    "Session",
    "SessionSummary",
    "UpdateState",
    "UpdateStatus",
    "from_dialog_id",
    "to_dialog_id",
]
