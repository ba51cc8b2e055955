"""Waiting for a step of work that runs as a task (I/O: the event loop)."""

from __future__ import annotations

import asyncio
from typing import Any


async def until_set_or_done(flag: asyncio.Event, task: asyncio.Future[Any]) -> None:
    """Return once `flag` is set or `task` is done, whichever comes first. A task that
    failed is done too: what it raised is for whoever awaits it."""
    if flag.is_set():
        return
    waiting = asyncio.ensure_future(flag.wait())
    try:
        await asyncio.wait((task, waiting), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
