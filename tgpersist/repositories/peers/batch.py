"""`Batch`: the rows one `save_many` writes, and which batch peer ends up owning each username."""

from __future__ import annotations

import builtins
import dataclasses
import operator
from typing import Any

from tgpersist.domain import Peer
from tgpersist.repositories.peers.rows import peer_row


@dataclasses.dataclass
class Batch:
    """The rows one `save_many` writes, and who ends up owning each username."""

    ids: builtins.list[int]  # dialog ids, sorted
    peer_rows: builtins.list[tuple[Any, ...]]  # PEER_COLUMNS
    name_rows: builtins.list[tuple[Any, ...]]  # NAME_COLUMNS: usernames other than the primary
    keys: builtins.list[str]  # every username key the batch writes
    owner: dict[str, int]  # username key -> dialog id of the batch peer that gets it

    @classmethod
    def of(cls, session: str, batch: dict[int, Peer]) -> Batch:
        """The rows of `batch` (dialog id -> peer, in the order the peers came)."""
        ids = sorted(batch)
        owner: dict[str, int] = {}
        peer_rows: builtins.list[tuple[Any, ...]] = []
        append = peer_rows.append
        # The usual batch in one pass: each peer has its primary username at most, none shared.
        for dialog_id in ids:
            peer = batch[dialog_id]
            names = peer.usernames
            username = key = None
            if names:
                if len(names) > 1 or peer.username is None:
                    return cls._general(session, batch, ids)
                username = names[0]  # the primary, spelled as in `usernames`
                key = username.lower()
                if key in owner:
                    return cls._general(session, batch, ids)
                owner[key] = dialog_id
            append(peer_row(dialog_id, peer, username, key))
        return cls(ids, peer_rows, [], builtins.list(owner), owner)

    @classmethod
    def _general(cls, session: str, batch: dict[int, Peer], ids: builtins.list[int]) -> Batch:
        """Any batch: peers with several usernames, and usernames that later peers take over."""
        owner: dict[str, int] = {}  # a later peer in the batch takes a username over
        several = False  # a peer with a username besides its primary, or without a primary
        for dialog_id, peer in batch.items():
            names = peer.usernames
            if not names:
                continue
            if len(names) == 1:
                owner[names[0].lower()] = dialog_id
                several = several or peer.username is None
            else:
                several = True
                for name in names:
                    owner[name.lower()] = dialog_id
        peer_rows: builtins.list[tuple[Any, ...]] = []
        name_rows: builtins.list[tuple[Any, ...]] = []
        for dialog_id in ids:
            peer = batch[dialog_id]
            username: str | None = None
            key: str | None = None
            if peer.username is not None:
                key = peer.username.lower()
                if owner[key] == dialog_id:
                    username = peer.username
                    if username not in peer.usernames:  # stored as spelled in `usernames`
                        username = next(n for n in peer.usernames if n.lower() == key)
                else:
                    key = None
            peer_rows.append(peer_row(dialog_id, peer, username, key))
            if several and len(peer.usernames) > (username is not None):
                kept = [n for n in peer.usernames if owner[n.lower()] == dialog_id]
                name_rows.extend(
                    (session, n.lower(), dialog_id, n, position)
                    for position, n in enumerate(kept)
                    if n.lower() != key
                )
        name_rows.sort(key=operator.itemgetter(1))
        return cls(ids, peer_rows, name_rows, builtins.list(owner), owner)
