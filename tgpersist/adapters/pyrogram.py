"""Pyrogram forks on tgpersist: `PyrogramStorage`, a drop-in storage for Kurigram and Pyrofork.

    storage = PyrogramStorage(store, "alice")
    client = Client("alice", api_id=..., api_hash=..., storage_engine=storage)  # Kurigram
    client = Client("alice", api_id=..., api_hash=..., storage=storage)  # Pyrofork

Kurigram and Pyrofork both install the `pyrogram` module with different storage contracts; this module
finds out which one is installed and gives the class that meets its contract exactly (Kurigram:
`tgpersist.adapters._kurigram`, Pyrofork: `tgpersist.adapters._pyrofork`). Hydrogram has its own
module, `tgpersist.adapters.hydrogram`. The original Pyrogram (2.0.106) takes no storage engine at all:
importing this module with it raises an `ImportError` that lists the supported clients.

`open()` takes the session lease (unless `lease=False`) and loads the account into memory; lookups are
answered from memory with the same results and the same `KeyError`s as the fork's `SQLiteStorage`.
Peers and update states are written behind, in order, by one background task; the session setters
(`dc_id(2)`, `auth_key(...)`, ...) and `save()` wait until everything queued is stored, as the forks
commit them at once. `close()` stores everything queued and releases the lease. Deliberate differences:
invalid values (a DC id of 203, a short auth key, a peer type the fork does not know, a state id that is
neither 0 nor a channel's) raise `InvalidArgument` before anything changes, where `SQLiteStorage`
stores them; usernames and phone numbers tgpersist cannot store are dropped with a warning.
"""

from __future__ import annotations

import inspect
from importlib import metadata

from tgpersist.adapters import require

require("pyrogram", "pyrogram")

import pyrogram  # noqa: E402
import pyrogram.storage.storage  # noqa: E402

SUPPORTED = "Kurigram >= 2.1 (pip install 'tgpersist[pyrogram]') or Pyrofork >= 2.3 (pip install pyrofork)"


def installed_client() -> str:
    """The distribution that installed the `pyrogram` module, with its version (for messages)."""
    names = metadata.packages_distributions().get("pyrogram", [])
    for name in names:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return f"pyrogram {getattr(pyrogram, '__version__', '?')}"


def flavour() -> str:
    """ "kurigram" or "pyrofork": which storage contract the installed `pyrogram` module has."""
    parameters = inspect.signature(pyrogram.Client.__init__).parameters
    storage = pyrogram.storage.storage
    if "storage_engine" in parameters and hasattr(storage, "UpdateState"):
        return "kurigram"
    if "storage" in parameters and hasattr(storage.Storage, "update_state"):
        return "pyrofork"
    raise ImportError(
        f"tgpersist.adapters.pyrogram cannot serve {installed_client()}: it takes no storage engine. "
        f"Supported: {SUPPORTED}; for Hydrogram use tgpersist.adapters.hydrogram.HydrogramStorage."
    )


if flavour() == "kurigram":
    from tgpersist.adapters._kurigram import PyrogramStorage
else:
    from tgpersist.adapters._pyrofork import PyrogramStorage  # type: ignore[assignment]

from tgpersist.adapters._pyrogram_family import FORK_TYPES, PEER_TYPES  # noqa: E402

__all__ = ["FORK_TYPES", "PEER_TYPES", "SUPPORTED", "PyrogramStorage", "flavour", "installed_client"]
