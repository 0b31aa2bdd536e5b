"""`ExportResult`: what an export wrote, and what it had to fill in, assume or leave out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ExportResult:
    """`skipped` counts peers the target client cannot use (a user or channel without access hash)."""

    path: Path
    format: str
    peers: int
    skipped: int = 0
    channels: int = 0
    update_state: bool = False
    sent_files: int = 0
    filled_from_dc_table: tuple[str, ...] = ()
    assumed: tuple[str, ...] = ()
