"""The lease SQL for one session row, and what it reads back; every expiry comparison uses the
database clock (`statements.db_epoch`), so no client's clock ever decides whether a lease expired."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, or_, select, update

from tgpersist.repositories.scope import Scope
from tgpersist.sql import statements


@dataclass(frozen=True)
class LeaseInfo:
    """Who holds a session's lease: owner name, fencing token, and expiry by the database clock (UTC)."""

    owner: str
    token: int
    expires_at: datetime


def as_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class LeaseStatements:
    """The lease SQL for one session row; every expiry comparison uses the database clock."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.table: Table = scope.table(scope.models.Session)
        self.now: ColumnElement[float] = statements.db_epoch(scope.dialect)

    def _row(self) -> ColumnElement[bool]:
        return self.table.c.name == self.scope.name

    def acquire(self, owner: str, ttl: float) -> Any:
        """Take the lease if nobody holds it or it expired; bump the token. Only lease columns change."""
        t = self.table
        free = or_(t.c.lease_owner.is_(None), t.c.lease_expires.is_(None), t.c.lease_expires <= self.now)
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
