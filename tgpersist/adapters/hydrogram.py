"""Hydrogram on tgpersist: `HydrogramStorage`, a drop-in `hydrogram.storage.BaseStorage`.

    storage = HydrogramStorage(store, "alice")
    client = Client("alice", api_id=..., api_hash=..., session_storage_engine=storage)

Hydrogram accepts only a `BaseStorage` from its own `hydrogram` package (a storage from the `pyrogram`
namespace is ignored and it writes its own SQLite file instead). `open()` takes the session lease
(unless `lease=False`) and loads the account into memory; lookups answer from memory with the same
results and `KeyError`s as Hydrogram's `SQLiteStorage`, and writes are stored behind, in order, the
session setters and `save()` waiting until they are durable. Peers arrive as (id, access hash, type,
username, phone) and a username is found only as a peer's own, for 8 hours (`USERNAME_TTL`) after
the peer's last `update_peers`. Hydrogram keeps no update state. Deliberate differences from
`SQLiteStorage`: invalid values (a DC id of 203, a short auth key, a peer type it does not know) raise
`InvalidArgument` before anything changes; a peer id that does not fit its type is refused likewise.
"""

from __future__ import annotations

from typing import Any

from tgpersist.adapters import require

require("hydrogram", "hydrogram")

from hydrogram.storage import BaseStorage  # noqa: E402
from hydrogram.storage.sqlite_storage import get_input_peer  # noqa: E402

from tgpersist.adapters._primary_usernames import PrimaryUsernameStorage  # noqa: E402


class HydrogramStorage(PrimaryUsernameStorage, BaseStorage):  # type: ignore[misc]
    """A Hydrogram storage engine for session `name` of `store` (`session_storage_engine=` of `Client`).

    `lease=False` skips the session lease; `owner`, `ttl`, `wait`, `timeout` and `on_lost` go to
    `acct.session.acquire`. Once the lease is lost, the setters, `flush()` and `close()` raise `LeaseLost`.
    """

    def _fork_input_peer(self, peer_id: int, access_hash: Any, peer_type: str) -> Any:
        return get_input_peer(peer_id, access_hash, peer_type)
