"""Test helpers: wait on observable progress instead of sleeping."""

# ruff: noqa: ASYNC109  (eventually's `timeout` is a polling deadline, not a cancel scope)

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar, overload

__all__ = ["eventually"]

T = TypeVar("T")


@overload
async def eventually(
    predicate: Callable[[], Awaitable[T]],
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str = ...,
) -> T: ...


@overload
async def eventually(
    predicate: Callable[[], T],
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str = ...,
) -> T: ...


async def eventually(
    predicate: Callable[[], Any],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "",
) -> Any:
    """Poll ``predicate`` (sync or async) until it returns a truthy value; return that value.

    An ``AssertionError`` raised by the predicate counts as "not yet", so assertion blocks
    can be polled too. After ``timeout`` seconds an ``AssertionError`` is raised, chained
    to the predicate's last assertion failure, if any.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_failure: AssertionError | None = None
    while True:
        try:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            last_failure = None
        except AssertionError as failure:
            last_failure = failure
        if loop.time() >= deadline:
            what = message or getattr(predicate, "__qualname__", repr(predicate))
            raise AssertionError(f"not true within {timeout}s: {what}") from last_failure
        await asyncio.sleep(interval)


@contextlib.contextmanager
def loopback_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free 127.0.0.1 port in a thread; yields `http://127.0.0.1:PORT`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
