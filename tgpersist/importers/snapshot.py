"""`SessionSnapshot`: everything one session file or string holds, as domain objects.

Importers produce one, exporters consume one; storing it is one transaction (`importers.writer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tgpersist.domain import ChannelState, DcAuth, Peer, Session, UpdateState
from tgpersist.repositories.files import SentFile


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """A session with its peers, update state and (Telethon) sent-file cache, plus where it came from
    and what was filled in.

    `filled_from_dc_table` names session fields taken from the DC table rather than the source;
    `notes` are human-readable remarks (things the source lacked or that were left out).
    """

    session: Session
    source: str
    peers: tuple[Peer, ...] = field(default=(), repr=False)
    update_state: UpdateState | None = None
    channels: tuple[ChannelState, ...] = field(default=(), repr=False)
    sent_files: tuple[SentFile, ...] = field(default=(), repr=False)
    dc_auth: tuple[DcAuth, ...] = field(default=(), repr=False)  # per-DC keys (grammers)
    filled_from_dc_table: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
