"""The collector tuning of batch processes (`countersign.batch_gc`)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from countersign.batch_gc import YOUNG_THRESHOLD, tune_for_batches


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def _dropped_cycle() -> weakref.ref[_Node]:
    """A reference cycle made and let go: alive until the cyclic collector runs."""
    return weakref.ref(_Node())


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector_restored")
def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    alive_at_start_up = _Node()
    _, middle, old = gc.get_threshold()

    tune_for_batches()

    assert gc.get_freeze_count() > 0
    assert all(o is not alive_at_start_up for o in gc.get_objects())  # out of every generation
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
    assert YOUNG_THRESHOLD > 700  # the interpreter's default


@pytest.mark.usefixtures("collector_restored")
def test_cycles_made_after_it_are_still_collected() -> None:
    tune_for_batches()
    gone = _dropped_cycle()

    gc.collect()

    assert gone() is None


@pytest.mark.usefixtures("collector_restored")
def test_garbage_cycles_are_collected_without_being_asked() -> None:
    tune_for_batches()
    gone = _dropped_cycle()

    for _ in range(2 * YOUNG_THRESHOLD):  # unreachable cycles count until a collection runs
        _Node()

    assert gone() is None
