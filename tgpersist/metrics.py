"""OpenTelemetry metrics: queue depth, dead letters, claims/acks/fails, leases, transaction retries,
peer-cache hits and misses, and the latency of database-bound operations.

Written against the OpenTelemetry metrics API (`pip install 'tgpersist[metrics]'`), the convention for
libraries: every instrument is a no-op until the application installs an SDK `MeterProvider`. Without
`opentelemetry-api` installed nothing here imports it and every call returns at once. The instrument
names are listed in `INSTRUMENTS` (and in the README).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

_otel: Any
try:
    from opentelemetry import metrics as _otel
except ImportError:  # the optional extra is not installed: everything below is a no-op
    _otel = None

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

    from tgpersist.domain.stats import QueueCounts

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger(__name__)

METER = "tgpersist"

#: Every instrument: name -> (kind, unit, description).
INSTRUMENTS: dict[str, tuple[str, str, str]] = {
    "tgpersist.queue.depth": ("gauge", "{update}", "queued updates by session and state, as of stats()"),
    "tgpersist.queue.claimed": ("counter", "{update}", "updates handed out by claim()"),
    "tgpersist.queue.acked": ("counter", "{update}", "updates acked (deleted as handled)"),
    "tgpersist.queue.failed": ("counter", "{update}", "fail() calls that stored an error"),
    "tgpersist.queue.dead_letters": ("counter", "{update}", "updates that became dead letters"),
    "tgpersist.lease.acquired": ("counter", "{lease}", "session leases acquired"),
    "tgpersist.lease.lost": ("counter", "{lease}", "session leases found taken over"),
    "tgpersist.lease.released": ("counter", "{lease}", "session leases released"),
    "tgpersist.transaction.retries": ("counter", "{retry}", "transactions re-run, by cause"),
    "tgpersist.peer_cache.hits": ("observable_counter", "{lookup}", "peer lookups answered from cache"),
    "tgpersist.peer_cache.misses": ("observable_counter", "{lookup}", "peer lookups that read the DB"),
    "tgpersist.operation.duration": ("histogram", "s", "duration of database-bound operations"),
}


class _Tracked(Protocol):
    """What the queue-depth gauge reads from a `Store`: what its last `stats()` found."""

    last_stats: dict[str, QueueCounts]


class PeerCacheLookups:
    """Peer-cache hits and misses of every cache in this process (plain integers: the hot path adds
    one to an attribute and nothing else; an observable counter reports them when collected)."""

    __slots__ = ("hits", "misses")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0


peer_cache_lookups = PeerCacheLookups()

#: Stores whose last stats() the queue-depth gauge reports.
_stores: weakref.WeakSet[Any] = weakref.WeakSet()


class _Instruments:
    def __init__(self, provider: MeterProvider | None) -> None:
        assert _otel is not None
        meter = _otel.get_meter(METER, _version(), meter_provider=provider)
        made: dict[str, Any] = {}
        for name, (kind, unit, description) in INSTRUMENTS.items():
            if kind == "counter":
                made[name] = meter.create_counter(name, unit=unit, description=description)
            elif kind == "histogram":
                made[name] = meter.create_histogram(name, unit=unit, description=description)
        self.counters = made
        self.duration = made["tgpersist.operation.duration"]
        meter.create_observable_gauge(
            "tgpersist.queue.depth", [_observe_depth], unit="{update}", description="queued updates"
        )
        meter.create_observable_counter(
            "tgpersist.peer_cache.hits", [_observe_cache("hits")], unit="{lookup}"
        )
        meter.create_observable_counter(
            "tgpersist.peer_cache.misses", [_observe_cache("misses")], unit="{lookup}"
        )


_instruments: _Instruments | None = None


def configure(meter_provider: MeterProvider | None = None) -> None:
    """Create the instruments on `meter_provider` (default: the global one, which stays a no-op proxy
    until the application sets an SDK provider). Called on import; call again to use another one."""
    global _instruments
    _instruments = _Instruments(meter_provider) if _otel is not None else None


def enabled() -> bool:
    """Whether `opentelemetry-api` is installed (whether anything here records at all)."""
    return _instruments is not None


def add(name: str, amount: int = 1, **attributes: str) -> None:
    """Add to the counter `name` (one of `INSTRUMENTS`)."""
    if _instruments is not None and amount:
        _instruments.counters[name].add(amount, attributes)


def track(store: _Tracked) -> None:
    """Report `store`'s queue depth as of its last `stats()`."""
    _stores.add(store)


def timed(operation: str) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Record the duration of an async function in `tgpersist.operation.duration` (attribute
    `operation`). Without `opentelemetry-api` it returns the function itself: no cost at all."""

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        if _otel is None:
            return fn
        attributes = {"operation": operation}

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                if _instruments is not None:
                    _instruments.duration.record(time.perf_counter() - started, attributes)

        return wrapper

    return decorate


async def report_queue_depth(store: Any, interval: float = 30.0) -> None:
    """Refresh `store`'s queue depth every `interval` seconds (run it as a task in one process): the
    gauge reports what the last `store.stats()` found. A failed refresh is logged and retried."""
    while True:
        try:
            await store.stats()
        except Exception as error:
            log.warning("refreshing queue depth failed: %s", type(error).__name__)
        await asyncio.sleep(interval)


def _observe_depth(options: CallbackOptions) -> Iterator[Observation]:
    assert _otel is not None
    for store in list(_stores):
        for session, counts in store.last_stats.items():
            for state in ("available", "in_flight", "retry_wait", "dead"):
                yield _otel.Observation(getattr(counts, state), {"session": session, "state": state})


def _observe_cache(which: str) -> Callable[[CallbackOptions], Iterator[Observation]]:
    def observe(options: CallbackOptions) -> Iterator[Observation]:
        assert _otel is not None
        yield _otel.Observation(getattr(peer_cache_lookups, which))

    return observe


def _version() -> str:
    try:
        return importlib.metadata.version("tgpersist")
    except importlib.metadata.PackageNotFoundError:
        return "0"


configure()
