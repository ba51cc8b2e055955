"""structlog, configured once at the entry point: JSON off a terminal, readable on one (I/O).

Client libraries (aiokafka, asyncpg, pgserver) log through the standard library; their lines
go through the same renderer, so a JSON log stays JSON, with the library's logger name. Their
INFO chatter is dropped (WARNING and above pass, or everything at `--log-level debug`), and a
line that only reports a retriable error — one the client retries by itself, such as
aiokafka's `GroupCoordinatorNotAvailableError` while a new broker creates its offsets topic
— is DEBUG: it says nothing the reader must act on. Unless it keeps coming: the same line
retried for a minute without a pause passes as a WARNING, once a minute, with how long and
how often (a client retrying forever is something to act on).

One asyncio line is DEBUG too: "Future exception was never retrieved" for a transactional
producer's fencing. A fenced aiokafka producer fails every future it still holds (its
batches', its sender's), and nothing reads most of them; the worker has already read the
fencing where it matters (its commit) and logged what it did. Any other unread exception
stays an ERROR.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Literal

import structlog

__all__ = ["configure_logging"]


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is now: a logger cached before stderr was swapped
    (pytest's capture, a daemon redirect) must not keep writing to a closed file."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


PERSISTENT_S = 60.0
"""A retried line repeated this long, with no gap of as long, passes as a WARNING (once per
this long)."""
_KEPT_LINES = 256


@dataclass(slots=True)
class _Retries:
    first: float
    last: float
    count: int = 0
    warned: float | None = None


class _LibraryLevels(logging.Filter):
    """Gives library lines their level here (see the module doc), then applies `threshold`."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self._threshold = threshold
        self._retries: dict[tuple[str, str], _Retries] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if any(getattr(arg, "retriable", False) is True for arg in args):
            self._level_retried(record)
        elif record.name == "asyncio" and _unread_fencing(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= self._threshold

    def _level_retried(self, record: logging.LogRecord) -> None:
        key, now = (record.name, str(record.msg)), record.created
        seen = self._retries.get(key)
        if seen is None or now - seen.last >= PERSISTENT_S:  # a new episode
            if len(self._retries) >= _KEPT_LINES:
                self._retries.clear()
            seen = self._retries[key] = _Retries(first=now, last=now)
        seen.last, seen.count = now, seen.count + 1
        lasting = now - seen.first
        if lasting >= PERSISTENT_S and (seen.warned is None or now - seen.warned >= PERSISTENT_S):
            seen.warned = now
            record.msg = f"{record.msg} (retried {seen.count} times in {lasting:.0f} s)"
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        else:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"


def _unread_fencing(record: logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    kind = type(error)
    return (
        str(record.msg).startswith("Future exception was never retrieved")
        and kind.__name__ == "ProducerFenced"
        and kind.__module__.startswith("aiokafka.")
    )


def configure_logging(
    fmt: Literal["auto", "json", "console"] = "auto", level: str = "info"
) -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    threshold = logging.getLevelNamesMapping()[level.upper()]
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        # No caching: a logger cached once would ignore later reconfiguration (capture_logs).
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.stdlib.add_log_level,
                timestamper,
                structlog.processors.format_exc_info,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    libraries = threshold if threshold <= logging.DEBUG else max(threshold, logging.WARNING)
    handler.addFilter(_LibraryLevels(libraries))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(libraries)
