"""The process's probe port (I/O): `/livez`, `/readyz` and `/metrics` over plain HTTP/1.1.

One port serves the orchestrator's probes and Prometheus's scrape (`--health-port`). It is
up before the process connects to anything, so liveness answers during a long start; until
the worker or projector exists, readiness answers 503 "starting". Requests are hostile
input: only `GET` (and `HEAD`) of the three paths, a request head of at most 8 KiB read
within 5 s, one request per connection; anything else gets 400, 404, 405 or the connection
closed. The bodies are short text (JSON would add nothing a probe reads).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import structlog

from engine.core.health import Verdict

__all__ = ["AllOf", "Probes", "Watched", "serving"]

log = structlog.get_logger(__name__)

_HEAD_LIMIT = 8 * 1024
_READ_TIMEOUT_S = 5.0
_SAMPLE_TIMEOUT_S = 5.0
_TEXT = "text/plain; charset=utf-8"


class Watched(Protocol):
    """A worker's or projector's watch (`engine.runtime.watch`, `projections.watch`)."""

    def live(self) -> Verdict: ...

    async def ready(self) -> Verdict: ...

    async def sample(self) -> None: ...


class AllOf:
    """Several watched parts of one process (`countersign dev`: a worker and a projector):
    alive and ready when each is; the reasons say which part."""

    def __init__(self, **parts: Watched) -> None:
        self._parts = parts

    def live(self) -> Verdict:
        return _merged({name: part.live() for name, part in self._parts.items()})

    async def ready(self) -> Verdict:
        return _merged({name: await part.ready() for name, part in self._parts.items()})

    async def sample(self) -> None:
        for part in self._parts.values():
            await part.sample()


def _merged(verdicts: dict[str, Verdict]) -> Verdict:
    reasons = tuple(f"{name}: {r}" for name, v in verdicts.items() for r in v.reasons)
    return Verdict(all(v.ok for v in verdicts.values()), reasons)


class Probes:
    """What the port answers; `watched` is set once the process has built its worker."""

    def __init__(self, exposition: Callable[[], bytes] | None, content_type: str) -> None:
        self.watched: Watched | None = None
        self._exposition = exposition
        self._content_type = content_type

    async def answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return 405, _TEXT, b"method not allowed\n"
        if path == "/livez":
            live = self.watched.live() if self.watched is not None else Verdict(True)
            return _verdict(live)
        if path == "/readyz":
            if self.watched is None:
                return _verdict(Verdict(False, ("starting",)))
            return _verdict(await self.watched.ready())
        if path == "/metrics" and self._exposition is not None:
            await self._sample()
            return 200, self._content_type, self._exposition()
        return 404, _TEXT, b"not found\n"

    async def _sample(self) -> None:
        """Refresh the gauges; if the log or the database does not answer in time, the
        counters are still served (the gauges keep their last values)."""
        if self.watched is None:
            return
        try:
            async with asyncio.timeout(_SAMPLE_TIMEOUT_S):
                await self.watched.sample()
        except Exception as exc:  # any failure of a sample must not fail the scrape
            log.warning("metrics_sample_failed", error=str(exc) or type(exc).__name__)


def _verdict(verdict: Verdict) -> tuple[int, str, bytes]:
    body = "ok\n" if verdict.ok else "".join(f"{reason}\n" for reason in verdict.reasons)
    return (200 if verdict.ok else 503), _TEXT, body.encode()


@contextlib.asynccontextmanager
async def serving(probes: Probes, host: str, port: int) -> AsyncIterator[int]:
    """Serve `probes` on `host:port` for the block; yields the port bound (for port 0)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _one_request(probes, reader, writer)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client gone or too slow: nothing to answer
        except Exception:
            log.exception("health_request_failed")  # the probe fails; the process goes on
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port, limit=_HEAD_LIMIT)
    bound = server.sockets[0].getsockname()[1]
    log.info("health_serving", host=host, port=bound, paths=["/livez", "/readyz", "/metrics"])
    try:
        yield bound
    finally:
        server.close()
        await server.wait_closed()


async def _one_request(
    probes: Probes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    async with asyncio.timeout(_READ_TIMEOUT_S):
        head = await reader.readuntil(b"\r\n\r\n")  # raises past the limit
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        status, content_type, body = 400, _TEXT, b"bad request\n"
        method = ""
    else:
        method = parts[0].decode("ascii", "replace")
        path = parts[1].split(b"?", 1)[0].decode("ascii", "replace")
        status, content_type, body = await probes.answer(method, path)
    reason = _REASONS.get(status, "")
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
    )
    if method != "HEAD":
        writer.write(body)
    await writer.drain()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}
