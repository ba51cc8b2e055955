"""The worker's tuning of aiokafka's transaction retries, on aiokafka's own handler."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from aiokafka.errors import ConcurrentTransactions, CoordinatorLoadInProgressError, NoError
from aiokafka.producer import sender as aiokafka_sender

from engine.log.kafka import txn_backoff

RETRY_BACKOFF_S = 0.01  # the worker's transactional producers' retry_backoff_ms


class Manager:
    def __init__(self) -> None:
        self.added: list[str] = []

    def consumer_group_added(self, group: str) -> None:
        self.added.append(group)


def backoff_for(error: type[Exception]) -> float | None:
    """What aiokafka's AddOffsetsToTxn handler waits before asking again after `error`."""
    manager = Manager()
    sender = SimpleNamespace(_retry_backoff=RETRY_BACKOFF_S, _txn_manager=manager)
    handler = aiokafka_sender.AddOffsetsToTxnHandler(sender, "workers")
    wait: float | None = handler.handle_response(SimpleNamespace(error_code=error.errno))
    if error is NoError:
        assert manager.added == ["workers"]
    return wait


@pytest.fixture
def tuning() -> Iterator[None]:
    was = txn_backoff.installed()
    yield
    (txn_backoff.install if was else txn_backoff.restore)()


@pytest.mark.usefixtures("tuning")
def test_a_registration_refused_while_the_last_transaction_ends_is_asked_again_soon() -> None:
    txn_backoff.restore()
    assert backoff_for(ConcurrentTransactions) == RETRY_BACKOFF_S  # aiokafka's own wait
    txn_backoff.install()
    assert backoff_for(ConcurrentTransactions) == txn_backoff.SOON_S
    assert aiokafka_sender.BACKOFF_OVERRIDE == txn_backoff.SOON_S  # partitions' registration


@pytest.mark.usefixtures("tuning")
def test_other_answers_keep_aiokafkas_own_handling() -> None:
    txn_backoff.install()
    txn_backoff.install()  # twice: wrapped once
    assert backoff_for(CoordinatorLoadInProgressError) == RETRY_BACKOFF_S
    assert backoff_for(NoError) is None


@pytest.mark.usefixtures("tuning")
def test_restore_gives_aiokafkas_backoffs_back() -> None:
    txn_backoff.install()
    txn_backoff.restore()
    assert not txn_backoff.installed()
    assert aiokafka_sender.BACKOFF_OVERRIDE == 0.02
