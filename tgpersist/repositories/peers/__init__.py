"""The peer cache of one account: the repository, its rows, its statements and username takeover."""

from tgpersist.repositories.peers.repository import WRITE_THROUGH_LIMIT, PeerRepository
from tgpersist.repositories.peers.rows import (
    NAME_COLUMNS,
    PEER_COLUMNS,
    PEER_FIELDS,
    PEER_SHARED,
    READ_COLUMNS,
    fold,
    phone_digits,
    trusted_peer,
)
from tgpersist.repositories.peers.statements import PeerStatements, statements_for

__all__ = [
    "NAME_COLUMNS",
    "PEER_COLUMNS",
    "PEER_FIELDS",
    "PEER_SHARED",
    "READ_COLUMNS",
    "WRITE_THROUGH_LIMIT",
    "PeerRepository",
    "PeerStatements",
    "fold",
    "phone_digits",
    "statements_for",
    "trusted_peer",
]
