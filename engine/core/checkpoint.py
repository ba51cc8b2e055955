"""Restore checkpoints: where the next owner of a runs partition must start reading. Pure.

A worker that takes over a partition rebuilds the runs it needs from the runs topic. Reading
the partition from offset 0 would make that grow with every run ever finished, so the owner
keeps a checkpoint, written to the `<prefix>.checkpoints` topic (compacted, key = the
partition) in the same transaction as the events it describes, so it is exactly as current
as the log:

- `restore_from`: every run a restore needs starts at or after this offset. The runs needed
  are the live ones (not completed, failed or cancelled) and the `keep_finished` runs that
  finished last, whose small states answer repeated commands (a StartRun sent twice, a
  decision id sent again). Older finished runs are forgotten: a command for one of them is
  treated as for an unknown run (the dedup window; see docs/exactly-once.md).
- `consumed`: the commands-topic position committed in the same transaction. After a commit
  whose outcome is unknown, it tells whether that commit happened (the transaction's receipt).

`Horizon` tracks the first offset of every needed run and computes `restore_from`; the
first offset of a run started in a step not yet committed is not known, so a lower bound
is used (the next offset of the partition as last seen): reading a few records too many is
harmless, starting after a needed run is not. `RestoreScan` is the reading side: fed the
records from `restore_from` on, it keeps exactly the runs the previous owner needed, and
skips the others without decoding them (the event type is in the record's header).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from events.checkpoints import Checkpoint

__all__ = ["Checkpoint", "Horizon", "RawEvent", "RecordKind", "RestoreScan"]

RecordKind: TypeAlias = Literal["start", "end", "other"]
"""What a runs-topic record is, as far as a restore cares: a run's first event, a run's last
event (completed, failed or cancelled) or anything else."""


class Horizon:
    """The first offsets of the runs a restore of one partition would need.

    Runs are added when they start (`started`, with a lower bound that `committed` makes
    exact) or when a restore finds them (`found`, exact); `finished` keeps the last
    `keep_finished` finished runs and returns the ones it forgets. `restore_from` is the
    smallest first offset of a kept run, else the next offset of the partition: it never
    goes back.
    """

    def __init__(self, keep_finished: int, next_offset: int = 0) -> None:
        if keep_finished < 0:
            raise ValueError("keep_finished must be >= 0")
        self._keep = keep_finished
        self._next = next_offset
        self._first: dict[str, int] = {}
        self._estimated: set[str] = set()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._heap: list[tuple[int, str]] = []

    def started(self, run_id: str) -> None:
        """A run started in a step not committed yet: its events come at `next_offset` or later."""
        if run_id not in self._first:
            self.found(run_id, self._next)
            self._estimated.add(run_id)

    def found(self, run_id: str, first_offset: int) -> None:
        if run_id in self._first:
            return
        self._first[run_id] = first_offset
        heapq.heappush(self._heap, (first_offset, run_id))

    def finished(self, run_id: str) -> list[str]:
        """The run ended; returns the finished runs no longer kept (oldest first)."""
        if run_id not in self._first or run_id in self._finished:
            return []
        self._finished[run_id] = None
        forgotten: list[str] = []
        while len(self._finished) > self._keep:
            old, _ = self._finished.popitem(last=False)
            del self._first[old]
            self._estimated.discard(old)
            forgotten.append(old)
        return forgotten

    def committed(self, first_offsets: Mapping[str, int], next_offset: int) -> None:
        """A commit put records up to `next_offset - 1` in the log; `first_offsets` is the
        offset of each run's first record in it (exact for the runs it started)."""
        self._next = max(self._next, next_offset)
        if not self._estimated:
            return
        for run_id, offset in first_offsets.items():
            if run_id in self._estimated:
                self._estimated.discard(run_id)
                if run_id in self._first:
                    self._first[run_id] = offset
                    heapq.heappush(self._heap, (offset, run_id))

    @property
    def next_offset(self) -> int:
        return self._next

    @property
    def restore_from(self) -> int:
        heap = self._heap
        while heap and self._first.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # a forgotten run
        return heap[0][0] if heap else self._next

    def __len__(self) -> int:
        return len(self._first)


@dataclass(slots=True)
class RawEvent:
    offset: int
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class RestoreScan:
    """Sorts the records of a runs partition, read from a checkpoint's `restore_from`, into
    the runs a worker needs, without decoding the ones it does not.

    A run is needed if its first event is in the range and it is live at the end, or among
    the last `keep_finished` to finish (the same rule `Horizon` keeps, so a restore brings
    back exactly the set the previous owner kept). Records of runs that started before the
    range are skipped: by the checkpoint's promise those runs are finished and forgotten.
    Records behind a kept run's end are kept with it, for the restore's chain check.
    """

    keep_finished: int
    live: dict[str, list[RawEvent]] = field(default_factory=dict)
    finished: OrderedDict[str, list[RawEvent]] = field(default_factory=OrderedDict)
    skipped: int = 0
    kept: int = 0

    def add(
        self,
        run_id: str,
        offset: int,
        value: bytes,
        kind: RecordKind,
        headers: tuple[tuple[str, bytes], ...] = (),
    ) -> None:
        events = self.live.get(run_id)
        if events is None:
            ended = self.finished.get(run_id)
            if ended is not None:  # behind a kept run's end: checked with it
                ended.append(RawEvent(offset, value, headers))
                self.kept += 1
                return
            if kind != "start":
                self.skipped += 1
                return
            events = self.live[run_id] = []
        events.append(RawEvent(offset, value, headers))
        self.kept += 1
        if kind == "end":
            del self.live[run_id]
            self.finished[run_id] = events
            while len(self.finished) > self.keep_finished:
                _, dropped = self.finished.popitem(last=False)
                self.kept -= len(dropped)
