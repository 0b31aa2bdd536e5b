"""`HotState`: an account's update state and channel pts in memory, while this process holds its lease.

Under the lease nobody else may write them (their writes are fenced out), so after one read or write
the database has nothing new to say: `load_state`, `load_channel` and `list_channels` answer from here.
The copy belongs to one lease token: a lease that is lost, released or replaced by another drops it.
A read that raced with a write (`version` moved meanwhile) is not kept, so memory never goes stale.
"""

from __future__ import annotations

from tgpersist.domain import ChannelState, UpdateState

#: `state` not read yet (None means read, and there is none).
_UNKNOWN = object()


class HotState:
    def __init__(self) -> None:
        self._token: int | None = None
        self._state: UpdateState | object | None = _UNKNOWN
        self._channels: dict[int, int | None] = {}  # channel id -> pts (None: known to be absent)
        self._complete = False  # `_channels` holds every channel of the account
        #: Bumped by every write, so that a read begun before it is not kept.
        self.version = 0

    def under(self, token: int | None) -> HotState | None:
        """This copy if it may answer under lease `token` (None: no lease held, nothing kept)."""
        if token != self._token:
            self.clear()
            self._token = token
        return None if token is None else self

    def clear(self) -> None:
        self._state = _UNKNOWN
        self._channels = {}
        self._complete = False
        self.version += 1

    # -- account-wide state -----------------------------------------------------------------------
    def state(self) -> tuple[bool, UpdateState | None]:
        """(known, state)."""
        if self._state is _UNKNOWN:
            return False, None
        return True, self._state  # type: ignore[return-value]

    def put_state(self, state: UpdateState | None, *, read_at: int | None = None) -> None:
        """Keep `state`: written (`read_at` None), or read when `version` was `read_at`."""
        if read_at is None:
            self.version += 1
        elif read_at != self.version:
            return
        self._state = state

    # -- per-channel pts --------------------------------------------------------------------------
    def channel(self, channel_id: int) -> tuple[bool, ChannelState | None]:
        """(known, state)."""
        if channel_id in self._channels:
            pts = self._channels[channel_id]
            return True, None if pts is None else ChannelState(channel_id, pts)
        return self._complete, None

    def channels(self) -> list[ChannelState] | None:
        """Every channel, by id; None unless all are known."""
        if not self._complete:
            return None
        return [ChannelState(c, pts) for c, pts in sorted(self._channels.items()) if pts is not None]

    def put_channels(self, states: list[ChannelState], *, read_at: int | None = None) -> None:
        """Keep written channels' pts (`read_at` None), or the whole list as read at `read_at`."""
        if read_at is None:
            self.version += 1
            self._channels.update((s.channel_id, s.pts) for s in states)
        elif read_at == self.version:
            self._channels = {s.channel_id: s.pts for s in states}
            self._complete = True

    def put_channel(self, channel_id: int, state: ChannelState | None, *, read_at: int | None) -> None:
        """Keep one channel as read at `read_at` (None: deleted now)."""
        if read_at is None:
            self.version += 1
        elif read_at != self.version:
            return
        self._channels[channel_id] = None if state is None else state.pts
