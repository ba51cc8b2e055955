"""The runs a worker holds in memory, per owned partition. No I/O.

Live runs keep their decoded history, state and replayer, so a decision resumes one without
decoding anything (unless the worker lets waiting runs wait: `engine.core.live_run`);
finished runs keep only their small state, to answer repeated commands (a StartRun sent
twice, a decision id sent again) until the partition's horizon forgets them; the
partition's run index remembers every run it ever started, so none starts twice.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.core.live_run import LiveRun
from engine.core.run_index import RunIndex
from engine.core.state import RunState

__all__ = ["RunTable"]


class RunTable:
    def __init__(self) -> None:
        self._live: dict[int, dict[str, LiveRun]] = {}
        self._finished: dict[int, dict[str, RunState]] = {}
        self._index: dict[int, RunIndex] = {}

    def install(
        self,
        partition: int,
        live: dict[str, LiveRun],
        finished: dict[str, RunState],
        index: RunIndex,
    ) -> None:
        """A restored partition's runs (`finished` oldest first) and run index."""
        self._live[partition] = live
        self._finished[partition] = finished
        self._index[partition] = index

    def drop(self, partition: int) -> None:
        for run in self._live.pop(partition, {}).values():
            if run.replayer is not None:
                run.replayer.close()
        self._finished.pop(partition, None)
        self._index.pop(partition, None)

    def __contains__(self, partition: int) -> bool:
        return partition in self._live

    @property
    def partitions(self) -> frozenset[int]:
        return frozenset(self._live)

    def live(self, partition: int) -> dict[str, LiveRun]:
        return self._live.get(partition, {})

    def by_partition(self) -> Iterator[tuple[int, dict[str, LiveRun]]]:
        return iter(list(self._live.items()))

    def live_count(self) -> int:
        return sum(len(runs) for runs in self._live.values())

    def get(self, partition: int, run_id: str) -> LiveRun | None:
        return self._live.get(partition, {}).get(run_id)

    def state_of(self, partition: int, run_id: str) -> RunState | None:
        run = self.get(partition, run_id)
        if run is not None:
            return run.state
        return self._finished.get(partition, {}).get(run_id)

    def index(self, partition: int) -> RunIndex:
        return self._index.setdefault(partition, RunIndex())

    def add(self, run: LiveRun) -> None:
        self._live[run.partition][run.run_id] = run

    def retire(self, run: LiveRun, forgotten: list[str]) -> None:
        """A finished run leaves memory; its small state stays to answer late decisions,
        until the partition's horizon forgets it (`forgotten`)."""
        assert run.state is not None
        self._live.get(run.partition, {}).pop(run.run_id, None)
        finished = self._finished.setdefault(run.partition, {})
        finished[run.run_id] = run.state
        for run_id in forgotten:
            finished.pop(run_id, None)
