"""`WriteBehind`: an adapter's queued database writes, applied in order by one background task.

Adapters whose client calls them synchronously inside the event loop (Telethon) change their in-memory
copy at once and queue the matching write here, so no caller ever waits for the database. A write that
fails stays at the head of the queue and is retried (after a growing pause) until it succeeds; `flush()`
waits until everything queued so far is durable, and raises if a write fails meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tgpersist.domain import ChannelState, Peer, Session, UpdateState
from tgpersist.errors import LeaseLost
from tgpersist.repositories.lease import OnLost, SessionLease

if TYPE_CHECKING:
    from tgpersist.store import Account

log = logging.getLogger(__name__)

#: Pauses between retries of a failed write grow from the first to the last (seconds).
FIRST_RETRY = 0.05
LAST_RETRY = 5.0

Apply = Callable[[list[Any]], Awaitable[object]]

# Client-stopping tasks started on a lost lease, kept until done so they are not garbage-collected.
_stopping: set[asyncio.Task[None]] = set()


@dataclass
class Batch:
    """Queued writes of one kind; a later item with the same key replaces an earlier one.

    `apply` receives the items in the order they were (last) queued. A batch with `barrier=True`
    (a delete, say) never absorbs later writes, so everything after it is applied after it.
    """

    kind: str
    apply: Apply
    items: dict[Any, Any] = field(default_factory=dict)
    barrier: bool = False
    count: int = 1  # how many submitted writes this batch stands for

    def absorb(self, later: Batch) -> bool:
        """Fold `later` into this batch if both are the same kind of write; True if it did."""
        if self.barrier or later.barrier or later.kind != self.kind or later.apply != self.apply:
            return False
        for key, value in later.items.items():
            self.items.pop(key, None)
            self.items[key] = value
        self.count += later.count
        return True


class WriteBehind:
    """Applies submitted batches to the database in order, one at a time, from one background task.

    `guard` (if given) runs before every write and may raise (e.g. `LeaseLost`) to stop the writer.
    """

    def __init__(self, label: str, guard: Callable[[], None] | None = None) -> None:
        self._label = label
        self._guard = guard
        self._queue: deque[Batch] = deque()
        self._task: asyncio.Task[None] | None = None
        self._submitted = 0
        self._done = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._fatal: BaseException | None = None
        self._in_flight: Batch | None = None

    @property
    def pending(self) -> int:
        """How many submitted writes are not yet durable (queued or being written)."""
        return self._submitted - self._done

    @property
    def writing(self) -> bool:
        """True while a batch is being written to the database."""
        return self._in_flight is not None

    @property
    def failed(self) -> BaseException | None:
        """The error that stopped the writer for good (a lost lease), if any."""
        return self._fatal

    def submit(self, batch: Batch) -> None:
        """Queue a write (merged into the last queued batch when it is the same kind) and wake the writer."""
        self._submitted += batch.count
        if not (self._queue and self._queue[-1].absorb(batch)):
            self._queue.append(batch)
        self.start()

    async def flush(self) -> None:
        """Wait until every write submitted so far is durable; raise if a write fails meanwhile.

        A write that failed stays queued and is retried, so a later `flush()` may still succeed.
        """
        if self._fatal is not None:
            raise self._fatal
        target = self._submitted
        if self._done >= target:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        self.start()
        await future

    def discard(self) -> int:
        """Drop every queued write that is not being written yet; returns how many were dropped."""
        dropped = sum(batch.count for batch in self._queue)
        self._queue.clear()
        self._done += dropped
        self._wake(None)
        return dropped

    def start(self) -> None:
        """Start the background writer if anything is queued (a no-op outside a running event loop)."""
        if self._task is not None or self._fatal is not None or not self._queue:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop running: the next flush() starts the writer
            return
        self._task = loop.create_task(self._run(), name=f"tgpersist write-behind {self._label}")

    async def _run(self) -> None:
        failures = 0
        try:
            while self._queue:
                batch = self._queue.popleft()
                self._in_flight = batch
                try:
                    if self._guard is not None:
                        self._guard()
                    await batch.apply(list(batch.items.values()))
                except asyncio.CancelledError:
                    self._queue.appendleft(batch)  # still not durable: a later flush() writes it
                    raise
                except LeaseLost as error:
                    self._queue.appendleft(batch)
                    self._fatal = error
                    log.error(
                        "%s: the session lease was lost; %d writes not stored", self._label, self.pending
                    )
                    self._wake(error)
                    return
                except Exception as error:
                    self._queue.appendleft(batch)
                    failures += 1
                    delay = min(LAST_RETRY, FIRST_RETRY * 2 ** (failures - 1))
                    log.warning(
                        "%s: writing %s failed (%s); retrying in %.2fs",
                        self._label,
                        batch.kind,
                        type(error).__name__,
                        delay,
                    )
                    self._wake(error)
                    await asyncio.sleep(delay)
                    continue
                finally:
                    self._in_flight = None
                failures = 0
                self._done += batch.count
                self._wake(None)
        finally:
            self._task = None

    def _wake(self, error: BaseException | None) -> None:
        """Resolve the flushes that are now satisfied; fail every waiting one if `error` is given."""
        waiting, self._waiters = self._waiters, []
        for target, future in waiting:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            elif self._done >= target:
                future.set_result(None)
            else:
                self._waiters.append((target, future))


class WritesBehind:
    """What the client adapters share: their write-behind queue, their session lease, the writes the
    queue applies to the account, and what happens when the lease is lost.

    A lost lease means another process may be using the auth key right now (Telegram would answer
    `AUTH_KEY_DUPLICATED` and kill the session), so unless the caller passes its own `on_lost`, the
    adapter runs `stop_using_auth_key`: it logs at ERROR, disconnects the client it serves
    (`_disconnect_client`, one per adapter) and then wipes the auth key from memory, so that no
    reconnect can use it. Writes already stop with the lease (`LeaseLost`).
    """

    _account: Account
    _writer: WriteBehind
    _lease: SessionLease | None

    def stop_using_auth_key(self, lease: SessionLease) -> None:
        """The default `on_lost`: log at ERROR and stop the client from using the auth key (see class doc).

        Adapters call it (from the lease's own callback), and so may a caller's own `on_lost`.
        """
        log.error(
            "lease on session %r lost: disconnecting its client and dropping its auth key",
            lease.name,
            extra={"session": lease.name, "owner": lease.owner, "token": lease.token},
        )
        task = asyncio.get_running_loop().create_task(
            self._stop_client(), name=f"tgpersist stop client {lease.name!r}"
        )
        _stopping.add(task)
        task.add_done_callback(_stopping.discard)

    async def _stop_client(self) -> None:
        try:
            await self._disconnect_client()
        except Exception as error:
            log.error("disconnecting the client of session %r failed: %s", self._account.name, error)
        finally:
            self._forget_auth_key()

    async def _disconnect_client(self) -> None:
        """Disconnect the client this adapter serves (adapters that know it override this)."""

    def _forget_auth_key(self) -> None:
        """Drop the auth key from the adapter's memory (not from the database: it is the new owner's)."""

    @property
    def lease(self) -> SessionLease | None:
        """The lease held while open (None with `lease=False`, or once closed)."""
        return self._lease

    @property
    def pending_writes(self) -> int:
        """How many changes are not yet stored."""
        return self._writer.pending

    async def flush(self) -> None:
        """Wait until every change made so far is stored; raise if storing one fails (it is retried)."""
        await self._writer.flush()

    # -- the writes, run by the write-behind task --------------------------------------------------------
    def _check_lease(self) -> None:
        lease = self._lease
        if lease is not None and lease.lost:
            raise LeaseLost(self._account.name, lease.token)

    async def _save_session(self, rows: list[Session]) -> None:
        await self._account.session.save(rows[-1])

    async def _save_peers(self, peers: list[Peer]) -> None:
        await self._account.peers.save_many(peers)

    async def _save_state(self, states: list[UpdateState]) -> None:
        await self._account.updates.save_state(states[-1])

    async def _save_channels(self, channels: list[ChannelState]) -> None:
        await self._account.updates.save_channels(channels)


def lease_callback(on_lost: OnLost | None, adapter: Callable[[], WritesBehind | None]) -> OnLost:
    """The `on_lost` an adapter passes to `acquire`: the caller's own, or else the adapter's
    `stop_using_auth_key` (`adapter()` finds it: the lease is taken before the adapter exists)."""
    if on_lost is not None:
        return on_lost

    def stop(lease: SessionLease) -> None:
        serving = adapter()
        if serving is None:  # lost while the adapter was still loading: nothing uses the key yet
            log.error("lease on session %r lost before its adapter was ready", lease.name)
            return
        serving.stop_using_auth_key(lease)

    return stop
