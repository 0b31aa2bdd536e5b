"""The repository layer: one class per store, mapping rows to domain types (callers never see rows)."""

from tgpersist.repositories.conversations import ConversationRepository
from tgpersist.repositories.dc_auth import DcAuthRepository
from tgpersist.repositories.peers import PeerRepository
from tgpersist.repositories.queue import DurableQueue, QueuePolicy
from tgpersist.repositories.scope import Scope
from tgpersist.repositories.session import SessionRepository
from tgpersist.repositories.updates import UpdateRepository

__all__ = [
    "ConversationRepository",
    "DcAuthRepository",
    "DurableQueue",
    "PeerRepository",
    "QueuePolicy",
    "Scope",
    "SessionRepository",
    "UpdateRepository",
]
