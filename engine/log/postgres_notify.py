"""Wake-ups for the PostgreSQL event log: LISTEN on one connection per process, fanned out.

Appends notify the topic's channel (payload: the partition) and group changes notify the
group's channel, from inside their transactions, so a notification arrives only after the
change is committed and visible. Waiters never rely on notifications alone: each wait has
a timeout after which the caller looks anyway, so a notification lost while the listening
connection was down costs at most that timeout. When the connection drops, every
subscriber is woken at once and the notifier reconnects in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

__all__ = ["Notifier", "Signal"]

log = structlog.get_logger(__name__)

Callback = Callable[[str], None]

_RECONNECT_FIRST_S = 0.2
_RECONNECT_MAX_S = 5.0


class Signal:
    """A counter that waiters can wait on: read `version`, do the work, then `wait(seen)`
    returns as soon as the version moved past `seen` (at once if it already has)."""

    def __init__(self) -> None:
        self.version = 0
        self._event = asyncio.Event()

    def fire(self) -> None:
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seen: int, timeout_s: float) -> None:
        if self.version != seen or timeout_s <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._event.wait()


class Notifier:
    """Holds the LISTEN connection of one `PostgresLog` and calls subscribers per channel."""

    def __init__(self, connect: Callable[[], Awaitable[Any]]) -> None:
        self._connect = connect
        self._conn: Any = None
        self._lock = asyncio.Lock()  # one operation at a time on the connection
        self._channels: dict[str, list[Callback]] = {}
        self._reconnecting: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        async with self._lock:
            self._conn = await self._open()

    async def close(self) -> None:
        self._closing = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        async with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing anyway; nothing to report to
                await asyncio.wait_for(conn.close(), 5.0)

    async def subscribe(self, channel: str, callback: Callback) -> None:
        async with self._lock:
            callbacks = self._channels.setdefault(channel, [])
            callbacks.append(callback)
            if len(callbacks) == 1 and self._usable():
                await self._conn.add_listener(channel, self._deliver)

    async def unsubscribe(self, channel: str, callback: Callback) -> None:
        async with self._lock:
            callbacks = self._channels.get(channel, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks and channel in self._channels:
                del self._channels[channel]
                if self._usable():
                    with contextlib.suppress(Exception):  # the connection may be going away
                        await self._conn.remove_listener(channel, self._deliver)

    def _usable(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def _open(self) -> Any:
        conn = await self._connect()
        conn.add_termination_listener(self._lost)
        for channel in self._channels:
            await conn.add_listener(channel, self._deliver)
        return conn

    def _deliver(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        for callback in list(self._channels.get(channel, ())):
            callback(payload)

    def _wake_all(self) -> None:
        for callbacks in list(self._channels.values()):
            for callback in list(callbacks):
                callback("")

    def _lost(self, conn: Any) -> None:
        if self._closing or conn is not self._conn:
            return
        log.warning("log_listener_connection_lost")
        self._wake_all()
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = _RECONNECT_FIRST_S
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                async with self._lock:
                    self._conn = await self._open()
            except Exception as error:  # retried with backoff; waiters time out meanwhile
                log.warning("log_listener_reconnect_failed", error=repr(error))
                delay = min(delay * 2, _RECONNECT_MAX_S)
                continue
            log.info("log_listener_reconnected")
            self._wake_all()  # whatever was notified while away: look now
            return
