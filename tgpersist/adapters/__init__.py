"""Drop-in storage for the Telegram clients people already use, one module per client.

- `tgpersist.adapters.telethon.TelethonSession`: a Telethon v1 session (`pip install 'tgpersist[telethon]'`);
- `tgpersist.adapters.pyrogram.PyrogramStorage`: a Kurigram or Pyrofork storage engine
  (`tgpersist[pyrogram]` / `tgpersist[pyrofork]`);
- `tgpersist.adapters.hydrogram.HydrogramStorage`: a Hydrogram storage engine (`tgpersist[hydrogram]`);
- `tgpersist.adapters.grammers.GrammersSession`: a grammers session, Python >= 3.12 (`tgpersist[grammers]`);
- `tgpersist.adapters.aiogram.TgPersistStorage`: an aiogram 3 FSM storage (`tgpersist[aiogram]`).

This package imports no client library: import the module of the client you use.
"""

from __future__ import annotations

import importlib


def require(module: str, extra: str) -> None:
    """Import `module`, or raise an `ImportError` that names the extra which installs it."""
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"this tgpersist adapter needs the {module!r} package: pip install 'tgpersist[{extra}]'"
        ) from error
