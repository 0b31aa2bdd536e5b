"""`UpdateRepository`: update state, per-channel pts, dedup keys and (via `DurableQueue`) the queue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import BigInteger, String, bindparam, delete, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist import metrics
from tgpersist.clock import utcnow
from tgpersist.domain import ChannelState, UpdateState
from tgpersist.errors import InvalidArgument
from tgpersist.repositories.queue import DurableQueue, QueuePolicy
from tgpersist.repositories.scope import Scope
from tgpersist.sql import reads, statements
from tgpersist.validation import MAX_NAME, check_duration, check_int, check_text, read_back

#: How long a dedup key is remembered by default (as the Go mtgo client does).
DEFAULT_DEDUP_TTL = timedelta(minutes=30)


def _ttl(value: timedelta | float | None) -> timedelta:
    """A dedup key's time to live: positive, finite, at most `validation.MAX_SECONDS`."""
    return DEFAULT_DEDUP_TTL if value is None else check_duration("ttl", value)


class UpdateRepository(DurableQueue):
    def __init__(self, scope: Scope, policy: QueuePolicy) -> None:
        super().__init__(scope, policy)
        models = scope.models
        self._state = scope.table(models.UpdateState)
        self._channels = scope.table(models.ChannelState)
        self._dedup = scope.table(models.DedupKey)
        self._save_state = statements.upsert(
            self._state, scope.dialect, ["session_name"], ["pts", "qts", "date", "seq"]
        )
        self._save_channel = statements.upsert(
            self._channels, scope.dialect, ["session_name", "channel_id"], ["pts"]
        )
        # Lone SELECTs compiled once: read in one round trip (one thread hop on SQLite).
        sa_dialect = scope.db.engine.dialect
        session = bindparam("session_name", type_=String)
        state, channels, dedup = self._state, self._channels, self._dedup
        self._read_state = reads.CompiledRead(
            select(state.c.pts, state.c.qts, state.c.date, state.c.seq).where(
                state.c.session_name == session
            ),
            sa_dialect,
        )
        self._read_channel = reads.CompiledRead(
            select(channels.c.pts).where(
                channels.c.session_name == session,
                channels.c.channel_id == bindparam("channel_id", type_=BigInteger),
            ),
            sa_dialect,
        )
        self._read_seen = reads.CompiledRead(
            select(literal(1)).where(
                dedup.c.session_name == session,
                dedup.c.key == bindparam("key", type_=String),
                dedup.c.expires_at > bindparam("now", type_=dedup.c.expires_at.type),
            ),
            sa_dialect,
        )

    # -- account-wide state -------------------------------------------------------------------
    async def load_state(self) -> UpdateState | None:
        rows = await self._scope.db.fetch(self._read_state, {"session_name": self._scope.name})
        return read_back(self._scope.name, UpdateState, *rows[0]) if rows else None

    @metrics.timed("updates.save_state")
    async def save_state(self, state: UpdateState, *, token: int | None = None) -> None:
        """Store the account's update state; under a lease, `LeaseLost` if the session was taken over."""
        if not isinstance(state, UpdateState):
            raise InvalidArgument("state", f"expected an UpdateState, got {type(state).__name__}")
        values = {
            "session_name": self._scope.name,
            "pts": state.pts,
            "qts": state.qts,
            "date": state.date,
            "seq": state.seq,
        }

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(self._save_state, values)

        await self._scope.write(work, fence=self._scope.fence(token))

    async def delete_state(self, *, token: int | None = None) -> bool:
        """Forget the account-wide update state (as Pyrogram's `delete_update_state(0)`). True if stored."""
        t = self._state
        stmt = delete(t).where(t.c.session_name == self._scope.name)

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(stmt)).rowcount > 0

        return await self._scope.write(work, fence=self._scope.fence(token))

    # -- per-channel pts --------------------------------------------------------------------------
    async def load_channel(self, channel_id: int) -> ChannelState | None:
        check_int("channel_id", channel_id, 1)
        values = {"session_name": self._scope.name, "channel_id": channel_id}
        rows = await self._scope.db.fetch(self._read_channel, values)
        return ChannelState(channel_id=channel_id, pts=rows[0][0]) if rows else None

    async def save_channel(self, state: ChannelState, *, token: int | None = None) -> None:
        await self.save_channels([state], token=token)

    async def save_channels(self, states: list[ChannelState], *, token: int | None = None) -> None:
        """Store several channels' pts in one transaction (fenced like `save_state`)."""
        rows: dict[int, dict[str, Any]] = {}
        for state in states:
            if not isinstance(state, ChannelState):
                raise InvalidArgument("state", f"expected a ChannelState, got {type(state).__name__}")
            rows[state.channel_id] = {
                "session_name": self._scope.name,
                "channel_id": state.channel_id,
                "pts": state.pts,
            }
        fence = self._scope.fence(token)
        if not rows:
            return

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(self._save_channel, [rows[k] for k in sorted(rows)])

        await self._scope.write(work, fence=fence)

    async def list_channels(self) -> list[ChannelState]:
        t = self._channels
        stmt = (
            select(t.c.channel_id, t.c.pts)
            .where(t.c.session_name == self._scope.name)
            .order_by(t.c.channel_id)
        )

        async def work(conn: AsyncConnection) -> list[ChannelState]:
            return [ChannelState(channel_id=r.channel_id, pts=r.pts) for r in await conn.execute(stmt)]

        return await self._scope.read(work)

    async def delete_channel(self, channel_id: int) -> bool:
        t = self._channels
        check_int("channel_id", channel_id, 1)
        stmt = delete(t).where(t.c.session_name == self._scope.name, t.c.channel_id == channel_id)

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(stmt)).rowcount > 0

        return await self._scope.db.run(work, write=True)

    # -- dedup keys ---------------------------------------------------------------------------------
    @metrics.timed("updates.remember")
    async def remember(self, key: str, ttl: timedelta | float | None = None) -> bool:
        """Atomically remember `key`: True the first time (or once it expired), False while remembered."""
        check_text("key", key, MAX_NAME, empty=False)
        lifetime = _ttl(ttl)
        t = self._dedup

        async def work(conn: AsyncConnection) -> bool:
            now = utcnow()  # per attempt: a retried transaction judges expiry afresh
            stmt = statements.insert(t, self._scope.dialect).values(
                session_name=self._scope.name, key=key, expires_at=now + lifetime
            )
            # One statement, so concurrent callers serialise on the row: exactly one gets a row back.
            # Insert, or take over an expired row; a live row stays untouched and returns nothing.
            stmt = stmt.on_conflict_do_update(  # type: ignore[attr-defined]
                index_elements=["session_name", "key"],
                set_={"expires_at": stmt.excluded.expires_at},  # type: ignore[attr-defined]
                where=t.c.expires_at <= now,
            ).returning(literal(1))
            return (await conn.execute(stmt)).first() is not None

        return await self._scope.write(work)

    async def seen(self, key: str) -> bool:
        """Whether `key` is remembered and not yet expired."""
        check_text("key", key, MAX_NAME, empty=False)
        values = {"session_name": self._scope.name, "key": key, "now": utcnow()}
        return bool(await self._scope.db.fetch(self._read_seen, values))

    async def forget(self, key: str) -> bool:
        check_text("key", key, MAX_NAME, empty=False)
        t = self._dedup
        stmt = delete(t).where(t.c.session_name == self._scope.name, t.c.key == key)

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(stmt)).rowcount > 0

        return await self._scope.db.run(work, write=True)

    async def prune(self) -> int:
        """Delete this account's expired dedup keys; returns how many."""
        t = self._dedup
        stmt = delete(t).where(t.c.session_name == self._scope.name, t.c.expires_at <= utcnow())

        async def work(conn: AsyncConnection) -> int:
            return (await conn.execute(stmt)).rowcount

        return await self._scope.db.run(work, write=True)
