"""structlog, configured once at the entry point: JSON off a terminal, readable on one."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is now: a logger cached before stderr was swapped
    (pytest's capture, a daemon redirect) must not keep writing to a closed file."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    fmt: Literal["auto", "json", "console"] = "auto", level: str = "info"
) -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        # No caching: a logger cached once would ignore later reconfiguration (capture_logs).
        cache_logger_on_first_use=False,
    )
    # aiokafka logs through the stdlib; keep its warnings, on stderr, without its chatter.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(name)s %(message)s")
