"""What the operators' views report: queue depth by state (`QueueCounts`) and one line per session
(`SessionSummary`). Names and counts only: nothing here is secret, so no encryption key is needed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """One account's durable queue by state, at one instant.

    `pending` is every update that is not dead: `available` (claimable now) + `in_flight` (claimed,
    lease running) + `retry_wait` (waiting to become available: after a failure, or enqueued with a
    delay). `oldest_age` is the seconds since the oldest pending update was enqueued (None: none).
    """

    available: int = 0
    in_flight: int = 0
    retry_wait: int = 0
    dead: int = 0
    oldest_age: float | None = None

    @property
    def pending(self) -> int:
        return self.available + self.in_flight + self.retry_wait

    def __getitem__(self, key: str) -> Any:
        """Mapping-style access (`counts["pending"]`), as when `counts()` returned a dict."""
        return self.as_dict()[key]

    def as_dict(self) -> dict[str, Any]:
        """The stable field names of `--json` output: pending, available, in_flight, retry_wait, dead,
        oldest_age."""
        return {"pending": self.pending, **asdict(self)}


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One stored session as `tgpersist sessions list` shows it (no auth key, no api hash)."""

    name: str
    dc_id: int | None = None
    user_id: int | None = None
    username: str | None = None
    is_bot: bool | None = None
    test_mode: bool = False
    lease_owner: str | None = None
    lease_token: int | None = None
    lease_expires_at: datetime | None = None
    #: Why the stored lease expiry cannot be read (a row from an older version or a hand edit); the
    #: next `acquire` takes such a lease over.
    lease_problem: str | None = None
    peers: int = 0
    queue: QueueCounts = field(default_factory=QueueCounts)
    updated_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        values = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "queue"}
        for key in ("lease_expires_at", "updated_at"):
            values[key] = values[key].isoformat() if values[key] is not None else None
        return {**values, "queue": self.queue.as_dict()}
