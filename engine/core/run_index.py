"""Every run a partition ever started, kept small enough to hold for millions of runs. Pure.

A run id starts once, ever: a StartRun for a run that finished long ago (and whose state the
worker forgot) must not start it again. The worker keeps, per partition, a 64-bit hash of
each run id it ever started, and one of each (run id, start command id) pair so that a
StartRun sent again is recognised as a repeat rather than a clash. That is 16 bytes a run
(a million runs: 16 MiB), in sorted arrays with an unsorted tail merged in when it reaches a
sixteenth of them (so merging costs O(1) a run, amortized).

The hashes are Python's own string hash (SipHash, keyed per process): the index is rebuilt
from the log by every process, so they never travel, and a sender cannot aim a collision at
a key it does not know. A collision would refuse a new run as "already exists" (fail
closed); at 64 bits the chance is about one in 30 billion for a million runs on a partition.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable
from itertools import chain

__all__ = ["RunIndex"]

_TAIL = 4096


class _HashSet:
    """A set of 64-bit integers: a sorted array and a small tail set."""

    def __init__(self) -> None:
        self._sorted = array("q")
        self._tail: set[int] = set()

    def add(self, value: int) -> None:
        if value in self:
            return
        self._tail.add(value)
        if len(self._tail) >= max(_TAIL, len(self._sorted) // 16):
            self._merge()

    def extend(self, values: Iterable[int]) -> None:
        self._tail.update(value for value in values if value not in self)
        self._merge()

    def _merge(self) -> None:
        # Two sorted runs: the sort merges them in linear time.
        self._sorted = array("q", sorted(chain(self._sorted, sorted(self._tail))))
        self._tail.clear()

    def __contains__(self, value: int) -> bool:
        if value in self._tail:
            return True
        at = bisect_left(self._sorted, value)
        return at < len(self._sorted) and self._sorted[at] == value

    def __len__(self) -> int:
        return len(self._sorted) + len(self._tail)


class RunIndex:
    def __init__(self) -> None:
        self._runs = _HashSet()
        self._starts = _HashSet()

    def add(self, run_id: str, start_command_id: str) -> None:
        self._runs.add(hash(run_id))
        self._starts.add(hash((run_id, start_command_id)))

    def extend(self, started: Iterable[tuple[str, str]]) -> None:
        """Many (run id, start command id) pairs at once (a restore)."""
        pairs = list(started)
        self._runs.extend(hash(run_id) for run_id, _ in pairs)
        self._starts.extend(hash(pair) for pair in pairs)

    def __contains__(self, run_id: str) -> bool:
        return hash(run_id) in self._runs

    def started_by(self, run_id: str, start_command_id: str) -> bool:
        """Whether this exact StartRun started the run (a repeat, not a clash)."""
        return hash((run_id, start_command_id)) in self._starts

    def __len__(self) -> int:
        return len(self._runs)
