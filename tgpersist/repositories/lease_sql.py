"""The lease SQL for one session row, and what it reads back; every expiry comparison uses the
database clock (`statements.db_epoch`), so no client's clock ever decides whether a lease expired."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, or_, select, update

from tgpersist.errors import UnreadableRow
from tgpersist.repositories.scope import Scope
from tgpersist.sql import statements
from tgpersist.validation import MAX_SECONDS


@dataclass(frozen=True)
class LeaseInfo:
    """Who holds a session's lease: owner name, fencing token, and expiry by the database clock (UTC)."""

    owner: str
    token: int
    expires_at: datetime


def as_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def stored_expiry(session: str, epoch: Any) -> datetime:
    """A `lease_expires` read from the database; `UnreadableRow` if it is no time (say, written by
    hand or an older version with a huge ttl). `acquire` takes such a lease over."""
    try:
        if not isinstance(epoch, int | float) or not math.isfinite(epoch):
            raise ValueError("not a finite number")
        return as_datetime(epoch)
    except (ValueError, OverflowError, OSError) as error:
        raise UnreadableRow(session, "lease_expires", f"not a time ({error})") from None


class LeaseStatements:
    """The lease SQL for one session row; every expiry comparison uses the database clock."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.table: Table = scope.table(scope.models.Session)
        self.now: ColumnElement[float] = statements.db_epoch(scope.dialect)

    def _row(self) -> ColumnElement[bool]:
        return self.table.c.name == self.scope.name

    def acquire(self, owner: str, ttl: float) -> Any:
        """Take the lease if nobody holds it, it expired or its expiry is unreadable (further ahead than
        any ttl can reach: written by hand or an older version); bump the token. Only lease columns change."""
        t = self.table
        unreadable = t.c.lease_expires > self.now + MAX_SECONDS  # also NaN and Infinity (PostgreSQL)
        free = or_(
            t.c.lease_owner.is_(None), t.c.lease_expires.is_(None), t.c.lease_expires <= self.now, unreadable
        )
        return (
            update(t)
            .where(self._row(), free)
            .values(lease_owner=owner, lease_token=t.c.lease_token + 1, lease_expires=self.now + ttl)
            .returning(t.c.lease_token, t.c.lease_expires)
        )

    def current(self) -> Any:
        """The lease columns and the seconds left on them, as the database counts them."""
        t = self.table
        left = (t.c.lease_expires - self.now).label("left")
        return select(t.c.lease_owner, t.c.lease_token, t.c.lease_expires, left).where(self._row())

    def renew(self, token: int, ttl: float) -> Any:
        t = self.table
        return (
            update(t)
            .where(self._row(), t.c.lease_token == token, t.c.lease_owner.is_not(None))
            .values(lease_expires=self.now + ttl)
            .returning(t.c.lease_expires)
        )

    def release(self, token: int) -> Any:
        t = self.table
        return (
            update(t)
            .where(self._row(), t.c.lease_token == token, t.c.lease_owner.is_not(None))
            .values(lease_owner=None, lease_expires=None)
            .returning(t.c.lease_token)
        )


@dataclass(frozen=True)
class Busy:
    owner: str
    expires: float
    left: float
