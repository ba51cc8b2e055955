"""Where a live worker's clock, ids and randomness come from (I/O: the system clock)."""

from __future__ import annotations

import random
import time
import uuid

from engine.core.executor import Services

__all__ = ["live_services"]


def live_services() -> Services:
    return Services(
        clock_us=lambda: time.time_ns() // 1000,
        new_uuid=lambda: str(uuid.uuid4()),
        random=random.random,
    )
