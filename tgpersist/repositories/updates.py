"""`UpdateRepository`: update state, per-channel pts, dedup keys and (via `DurableQueue`) the queue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import BigInteger, String, bindparam, delete, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist import metrics
from tgpersist.domain import ChannelState, UpdateState
from tgpersist.errors import InvalidArgument, LeaseLost
from tgpersist.hot_state import HotState
from tgpersist.repositories.queue import DurableQueue, QueuePolicy
from tgpersist.repositories.scope import Scope
from tgpersist.sql import reads
from tgpersist.validation import MAX_NAME, check_duration, check_int, check_text, read_back
from tgpersist.writes.dedup import Forget, Remember
from tgpersist.writes.upserts import Upsert

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
        # Small writes, coalesced with other callers' by the group-commit writer.
        sa_dialect = scope.db.engine.dialect
        fields = ["pts", "qts", "date", "seq"]
        columns = ["session_name", *fields]
        self._save_state = Upsert(self._state, sa_dialect, ["session_name"], columns, fields)
        keys = ["session_name", "channel_id"]
        self._save_channel = Upsert(self._channels, sa_dialect, keys, [*keys, "pts"], ["pts"])
        self._remember = Remember(self._dedup, sa_dialect)
        self._forget = Forget(self._dedup, sa_dialect)
        # Lone SELECTs compiled once: read in one round trip (one thread hop on SQLite).
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
        """The account's update state; from memory while this process holds the account's lease."""
        hot = self._scope.hot.under(self._scope.held_token())
        if hot is not None:
            known, state = hot.state()
            if known:
                return state
            read_at = hot.version
        rows = await self._scope.db.fetch(self._read_state, {"session_name": self._scope.name})
        state = read_back(self._scope.name, UpdateState, *rows[0]) if rows else None
        if hot is not None:
            hot.put_state(state, read_at=read_at)
        return state

    @metrics.timed("updates.save_state")
    async def save_state(self, state: UpdateState, *, token: int | None = None) -> None:
        """Store the account's update state; under a lease, `LeaseLost` if the session was taken over."""
        if not isinstance(state, UpdateState):
            raise InvalidArgument("state", f"expected an UpdateState, got {type(state).__name__}")
        row = {
            "session_name": self._scope.name,
            "pts": state.pts,
            "qts": state.qts,
            "date": state.date,
            "seq": state.seq,
        }
        fence = self._scope.fence(token)
        await self._fenced(self._save_state, [row], fence, lambda hot: hot.put_state(state))

    async def delete_state(self, *, token: int | None = None) -> bool:
        """Forget the account-wide update state (as Pyrogram's `delete_update_state(0)`). True if stored."""
        t = self._state
        stmt = delete(t).where(t.c.session_name == self._scope.name)

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(stmt)).rowcount > 0

        try:
            return await self._scope.write(work, fence=self._scope.fence(token))
        finally:
            self._scope.hot.clear()

    # -- per-channel pts --------------------------------------------------------------------------
    async def load_channel(self, channel_id: int) -> ChannelState | None:
        """One channel's pts; from memory while this process holds the account's lease."""
        check_int("channel_id", channel_id, 1)
        hot = self._scope.hot.under(self._scope.held_token())
        if hot is not None:
            known, state = hot.channel(channel_id)
            if known:
                return state
            read_at = hot.version
        values = {"session_name": self._scope.name, "channel_id": channel_id}
        rows = await self._scope.db.fetch(self._read_channel, values)
        state = ChannelState(channel_id=channel_id, pts=rows[0][0]) if rows else None
        if hot is not None:
            hot.put_channel(channel_id, state, read_at=read_at)
        return state

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
        written = [ChannelState(k, rows[k]["pts"]) for k in sorted(rows)]
        await self._fenced(
            self._save_channel, [rows[k] for k in sorted(rows)], fence, lambda h: h.put_channels(written)
        )

    async def _fenced(
        self, kind: Upsert, rows: list[dict[str, Any]], fence: int | None, keep: Callable[[HotState], None]
    ) -> None:
        """A fenced upsert through the writer; once durable, its values replace the in-memory copy
        (if this process holds the lease the write was fenced with). A refused write drops the copy."""
        scope = self._scope

        def committed(_: None) -> None:
            if fence is not None and scope.held_token() == fence:
                hot = scope.hot.under(fence)
                if hot is not None:
                    keep(hot)

        try:
            await scope.submit(kind, rows, fence=fence, committed=committed)
        except LeaseLost:
            scope.hot.clear()
            raise

    async def list_channels(self) -> list[ChannelState]:
        """Every channel's pts, by id; from memory while this process holds the account's lease."""
        hot = self._scope.hot.under(self._scope.held_token())
        if hot is not None:
            known = hot.channels()
            if known is not None:
                return known
            read_at = hot.version
        t = self._channels
        stmt = (
            select(t.c.channel_id, t.c.pts)
            .where(t.c.session_name == self._scope.name)
            .order_by(t.c.channel_id)
        )

        async def work(conn: AsyncConnection) -> list[ChannelState]:
            return [ChannelState(channel_id=r.channel_id, pts=r.pts) for r in await conn.execute(stmt)]

        states = await self._scope.read(work)
        if hot is not None:
            hot.put_channels(states, read_at=read_at)
        return states

    async def delete_channel(self, channel_id: int) -> bool:
        t = self._channels
        check_int("channel_id", channel_id, 1)
        stmt = delete(t).where(t.c.session_name == self._scope.name, t.c.channel_id == channel_id)

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(stmt)).rowcount > 0

        try:
            return await self._scope.db.run(work, write=True)
        finally:
            self._scope.hot.put_channel(channel_id, None, read_at=None)

    # -- dedup keys ---------------------------------------------------------------------------------
    @metrics.timed("updates.remember")
    async def remember(self, key: str, ttl: timedelta | float | None = None) -> bool:
        """Atomically remember `key`: True the first time (or once it expired), False while remembered.

        Concurrent calls share one transaction (group commit); exactly one caller of a key, in any
        process, gets True.
        """
        check_text("key", key, MAX_NAME, empty=False)
        return await self._scope.submit(self._remember, (key, _ttl(ttl)))

    async def seen(self, key: str) -> bool:
        """Whether `key` is remembered and not yet expired."""
        check_text("key", key, MAX_NAME, empty=False)
        values = {"session_name": self._scope.name, "key": key, "now": self._scope.now()}
        return bool(await self._scope.db.fetch(self._read_seen, values))

    async def forget(self, key: str) -> bool:
        check_text("key", key, MAX_NAME, empty=False)
        return await self._scope.submit(self._forget, key)

    async def prune(self) -> int:
        """Delete this account's expired dedup keys; returns how many."""
        t = self._dedup
        stmt = delete(t).where(t.c.session_name == self._scope.name, t.c.expires_at <= self._scope.now())

        async def work(conn: AsyncConnection) -> int:
            return (await conn.execute(stmt)).rowcount

        return await self._scope.db.run(work, write=True)
