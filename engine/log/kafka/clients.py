"""Starting, closing and sending with aiokafka clients, and their records turned into ours (I/O)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka.errors import (
    AuthenticationFailedError,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    InvalidTxnState,
    KafkaError,
    MessageSizeTooLargeError,
    ProducerFenced,
    RecordTooLargeError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from engine.errors import ConfigurationError, TransientLogError
from engine.log.port import Outgoing, Record

__all__ = [
    "FENCING_ERRORS",
    "REFUSED_ERRORS",
    "TERMINAL_ERRORS",
    "check_partition",
    "close_quietly",
    "drain",
    "refused",
    "send",
    "start_or_close",
    "to_record",
    "transaction_error",
]

log = structlog.get_logger("engine.log.kafka")

FENCING_ERRORS = (ProducerFenced, InvalidProducerEpoch, InvalidProducerIdMapping, InvalidTxnState)
"""A newer producer owns the transactional id: this one must stop writing."""
TERMINAL_ERRORS = (RecordTooLargeError, MessageSizeTooLargeError)
"""The broker refuses the record itself: retrying cannot help."""
REFUSED_ERRORS = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    ClusterAuthorizationFailedError,
    SaslAuthenticationFailed,
    AuthenticationFailedError,
)
"""The broker does not know or allow this principal: terminal until credentials or ACLs change."""
CLOSE_TIMEOUT_S = 5.0


def refused(error: BaseException) -> ConfigurationError:
    return ConfigurationError(
        f"Kafka refused this client: {error!r}; check COUNTERSIGN_KAFKA_USERNAME and the "
        "principal's ACLs (docs/kafka-security.md)"
    )


async def start_or_close(client: Any, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await client.start()
    except REFUSED_ERRORS as error:
        await close_quietly(client, type(client).__name__)
        raise refused(error) from error
    except (KafkaError, OSError) as error:
        await close_quietly(client, type(client).__name__)
        raise TransientLogError(f"could not connect to Kafka: {error!r}") from error
    except BaseException:  # cancelled while starting: its background tasks must not live on
        await close_quietly(client, type(client).__name__)
        raise


def transaction_error(producer: Any) -> BaseException | None:
    """The error a transactional producer's sender met in the background, which ended the
    transaction under the caller (a fencing found while adding a partition: the next `send`
    only says "not in transaction"); None if there is none."""
    waiter = getattr(getattr(producer, "_txn_manager", None), "_transaction_waiter", None)
    if isinstance(waiter, asyncio.Future) and waiter.done() and not waiter.cancelled():
        return waiter.exception()
    return None


async def close_quietly(client: Any, role: str) -> None:
    """Close a client on the way out; a failure to close is logged, never raised."""
    # A fenced or broken producer keeps its error in a future nobody awaits; reading it marks
    # it seen, or asyncio logs "Future exception was never retrieved" with the whole traceback.
    transaction_error(client)
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await client.stop()
    except Exception as error:
        log.warning("kafka_client_close_failed", role=role, error=repr(error))


async def drain(tasks: Iterable[asyncio.Task[None]]) -> None:
    pending = list(tasks)
    if pending:
        with contextlib.suppress(Exception):
            await asyncio.gather(*pending, return_exceptions=True)


async def check_partition(producer: Any, out: Outgoing, known: dict[str, Any]) -> None:
    """Refuse a record for a partition its topic does not have (aiokafka only asserts)."""
    if out.partition is None:
        return
    if out.topic not in known:
        known[out.topic] = await producer.partitions_for(out.topic)
    if out.partition not in known[out.topic]:
        raise ConfigurationError(f"topic {out.topic} has no partition {out.partition}")


async def send(producer: Any, out: Outgoing) -> Any:
    delivery = await producer.send(
        out.topic,
        value=out.value,
        key=out.key.encode(),
        partition=out.partition,
        headers=list(out.headers),
    )
    # An aborted transaction fails every delivery; the commit reports why once, and asyncio
    # must not log each unawaited one as "Future exception was never retrieved".
    delivery.add_done_callback(_seen)
    return delivery


def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def to_record(message: Any) -> Record:
    key: bytes | None = message.key
    return Record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        # A key that is not UTF-8 must not stop the pipeline: the record still arrives.
        key=None if key is None else key.decode("utf-8", errors="replace"),
        value=message.value if message.value is not None else b"",
        timestamp_ms=message.timestamp,
        headers=tuple((name, value) for name, value in message.headers),
    )
