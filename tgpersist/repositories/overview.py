"""Store-wide views for operators, each one query: queue counts of every account, a summary line per
session, and the live leases. They read names, counts and lease columns only (never an auth key), so
they need no encryption key."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist.database import Database
from tgpersist.domain.stats import QueueCounts, SessionSummary
from tgpersist.errors import UnreadableRow
from tgpersist.repositories.lease import LeaseInfo, stored_expiry
from tgpersist.repositories.queue_admin import counts_select, to_counts
from tgpersist.sql import statements


async def queue_stats(db: Database) -> dict[str, QueueCounts]:
    """Every session's queue by state (sessions with an empty queue too), by session name."""
    sessions = db.models.table(db.models.Session)
    queue = db.models.table(db.models.DurableUpdate)
    now = db.clock.now()
    counts = counts_select(queue, now).subquery()
    stmt = (
        select(sessions.c.name, *(c for c in counts.c if c.name != "session_name"))
        .select_from(sessions.outerjoin(counts, counts.c.session_name == sessions.c.name))
        .order_by(sessions.c.name)
    )

    async def work(conn: AsyncConnection) -> dict[str, QueueCounts]:
        return {row.name: to_counts(row, now) for row in await conn.execute(stmt)}

    return await db.run(work, write=False)


async def session_summaries(db: Database) -> list[SessionSummary]:
    """One `SessionSummary` per stored session, sorted by name: DC, user, the live lease (by the
    database clock), peer count, queue counts and when the session row last changed."""
    models = db.models
    sessions, peers = models.table(models.Session), models.table(models.Peer)
    queue = models.table(models.DurableUpdate)
    now = db.clock.now()
    counts = counts_select(queue, now).subquery()
    peer_counts = (
        select(peers.c.session_name, func.count().label("peers")).group_by(peers.c.session_name).subquery()
    )
    live = sessions.c.lease_owner.is_not(None) & (sessions.c.lease_expires > statements.db_epoch(db.dialect))
    stmt = (
        select(
            sessions.c.name,
            sessions.c.dc_id,
            sessions.c.user_id,
            sessions.c.username,
            sessions.c.is_bot,
            sessions.c.test_mode,
            sessions.c.updated_at,
            live.label("leased"),
            sessions.c.lease_owner,
            sessions.c.lease_token,
            sessions.c.lease_expires,
            peer_counts.c.peers,
            *(c for c in counts.c if c.name != "session_name"),
        )
        .select_from(
            sessions.outerjoin(peer_counts, peer_counts.c.session_name == sessions.c.name).outerjoin(
                counts, counts.c.session_name == sessions.c.name
            )
        )
        .order_by(sessions.c.name)
    )

    def summary(row: Any) -> SessionSummary:
        leased = bool(row.leased)
        expires, problem = None, None
        if leased:
            try:
                expires = stored_expiry(row.name, row.lease_expires)
            except UnreadableRow as error:
                problem = error.problem
        return SessionSummary(
            name=row.name,
            dc_id=row.dc_id,
            user_id=row.user_id,
            username=row.username,
            is_bot=row.is_bot,
            test_mode=bool(row.test_mode),
            lease_owner=row.lease_owner if leased else None,
            lease_token=row.lease_token if leased else None,
            lease_expires_at=expires,
            lease_problem=problem,
            peers=int(row.peers or 0),
            queue=to_counts(row, now),
            updated_at=row.updated_at,
        )

    async def work(conn: AsyncConnection) -> list[SessionSummary]:
        return [summary(row) for row in await conn.execute(stmt)]

    return await db.run(work, write=False)


async def live_leases(db: Database) -> list[tuple[str, LeaseInfo, float]]:
    """(session, holder, seconds left by the database clock) for every session leased right now."""
    sessions = db.models.table(db.models.Session)
    now = statements.db_epoch(db.dialect)
    stmt = (
        select(
            sessions.c.name,
            sessions.c.lease_owner,
            sessions.c.lease_token,
            sessions.c.lease_expires,
            (sessions.c.lease_expires - now).label("left"),
        )
        .where(sessions.c.lease_owner.is_not(None), sessions.c.lease_expires > now)
        .order_by(sessions.c.name)
    )

    async def work(conn: AsyncConnection) -> list[tuple[str, LeaseInfo, float]]:
        rows = await conn.execute(stmt)
        live = []
        for r in rows:
            try:
                expires = stored_expiry(r.name, r.lease_expires)
            except UnreadableRow:
                continue  # `sessions list` shows it as unreadable; the next acquire takes it over
            live.append((r.name, LeaseInfo(r.lease_owner, int(r.lease_token), expires), float(r.left)))
        return live

    return await db.run(work, write=False)
