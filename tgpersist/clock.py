"""One place that says what "now" is, always timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Aware values are converted to UTC; naive ones are taken to be UTC already."""
    zone = value.tzinfo
    if zone is UTC:  # the usual case (our own `utcnow`), without a conversion
        return value
    if zone is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
