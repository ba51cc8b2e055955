"""How soon aiokafka's transactional producers ask again while the coordinator is still
finishing the last transaction (I/O: it tunes aiokafka's sender for the whole process).

A transaction begun right after the last one commits is refused (CONCURRENT_TRANSACTIONS)
until the coordinator has written the last one's markers, a millisecond or two. aiokafka
then waits a fixed 20 ms before registering a partition again (KAFKA-5477), and its whole
`retry_backoff_ms` before registering a consumer group's offsets, which is what a worker's
transaction does first (docs/kafka-internals.md, #1098). Half of a worker's transactions
met the refusal, so the wait was the largest part of a decision's latency
(`bench/transactions.py`). Both now ask again after 3 ms: a few requests more, at most;
every other refusal keeps aiokafka's own backoff.
"""

from __future__ import annotations

from typing import Any

from aiokafka.errors import ConcurrentTransactions, for_code
from aiokafka.producer import sender as aiokafka_sender

__all__ = ["SOON_S", "install", "installed", "restore"]

SOON_S = 0.003
_AIOKAFKA_OVERRIDE = aiokafka_sender.BACKOFF_OVERRIDE
_AIOKAFKA_RESPONSE = aiokafka_sender.AddOffsetsToTxnHandler.handle_response


def installed() -> bool:
    return aiokafka_sender.AddOffsetsToTxnHandler.handle_response is not _AIOKAFKA_RESPONSE


def restore() -> None:
    """aiokafka's own backoffs again (`bench/transactions.py` times both in one process)."""
    aiokafka_sender.BACKOFF_OVERRIDE = _AIOKAFKA_OVERRIDE
    aiokafka_sender.AddOffsetsToTxnHandler.handle_response = _AIOKAFKA_RESPONSE


def install() -> None:
    """Idempotent: the registration of offsets is wrapped once per process."""
    aiokafka_sender.BACKOFF_OVERRIDE = SOON_S
    if not installed():
        aiokafka_sender.AddOffsetsToTxnHandler.handle_response = _soon


def _soon(self: Any, resp: Any) -> Any:
    backoff = _AIOKAFKA_RESPONSE(self, resp)
    if backoff is not None and for_code(resp.error_code) is ConcurrentTransactions:
        return SOON_S
    return backoff
