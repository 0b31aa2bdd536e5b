"""`FaultProxy`: a TCP proxy on 127.0.0.1 that injects real network faults between a client and a server.

It runs its own event loop in a daemon thread, so the process that controls it may be blocked, and
clients in other processes can connect to its `port`. Faults:

- `pause()`: bytes stop flowing both ways; every socket stays open (a frozen route or a hung server).
- `cut()`: every connection is reset (RST) and the listening socket closed, so new ones are refused.
- `blackhole()`: new connections are accepted and never answered (a server that hangs on connect);
  existing ones keep flowing.
- `restore()`: back to forwarding (after `cut()` the same port listens again).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Awaitable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

#: Seconds a control call waits for the proxy's thread to carry it out.
CONTROL_TIMEOUT = 10.0
_CHUNK = 65536


class FaultProxy:
    """Forward 127.0.0.1:`port` to `target_host`:`target_port`, with faults on demand (see module doc)."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tgpersist fault proxy", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._blackhole = False
        self._streams: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0  # connections accepted so far (any mode)

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    # -- control (from any thread but the proxy's own) -----------------------------------------------
    def start(self) -> FaultProxy:
        """Start forwarding; `port` is the listening port afterwards."""
        self._thread.start()
        self._call(self._start())
        return self

    def pause(self) -> None:
        """Stop every byte both ways, on existing and new connections; keep all sockets open."""
        self._call(self._set_flowing(False))

    def blackhole(self) -> None:
        """Accept new connections and never answer them (nor connect them to the target)."""
        self._call(self._set_blackhole(True))

    def cut(self) -> None:
        """Reset every connection and stop listening: new connections are refused until `restore()`."""
        self._call(self._cut())

    def restore(self) -> None:
        """Forward again: resume paused bytes, listen again after a cut, answer new connections."""
        self._call(self._restore())

    def close(self) -> None:
        """Reset everything and stop the proxy's thread."""
        if not self._thread.is_alive():
            return
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CONTROL_TIMEOUT)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def url_for(self, url: str) -> str:
        """`url` (a PostgreSQL URL of the target) pointed at this proxy instead."""
        from sqlalchemy.engine.url import make_url

        parsed = make_url(url).set(host="127.0.0.1", port=self.port)
        return parsed.render_as_string(hide_password=False)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CONTROL_TIMEOUT)

    # -- the proxy's own loop -----------------------------------------------------------------------
    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _set_blackhole(self, on: bool) -> None:
        self._blackhole = on

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._streams):
            _reset(writer)
        self._streams.clear()
        for task in list(self._tasks):
            task.cancel()

    async def _restore(self) -> None:
        self._blackhole = False
        await self._set_flowing(True)
        if self._server is None:
            await self._listen()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._streams.add(writer)
        if self._blackhole:
            return  # keep the socket open, read nothing, answer nothing
        assert self._flowing is not None
        me = asyncio.current_task()
        if me is not None:  # a cut or close cancels it while it waits
            self._tasks.add(me)
        try:
            await self._flowing.wait()
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            _reset(writer)
            return
        except asyncio.CancelledError:
            return
        finally:
            self._tasks.discard(me)
        self._streams.add(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            self._spawn(self._pump(source, sink, (writer, up_writer)))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        assert self._flowing is not None
        try:
            while True:
                await self._flowing.wait()
                data = await source.read(_CHUNK)
                await self._flowing.wait()  # paused while reading: hold these bytes back too
                if not data:
                    break
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.CancelledError):
            pass
        # One side ended: end the other (a cut has already reset both).
        for writer in pair:
            if writer in self._streams:
                self._streams.discard(writer)
                with contextlib.suppress(OSError, RuntimeError):
                    writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST rather than a FIN, as a dropped route or a killed server does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
