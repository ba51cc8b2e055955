"""The routing rule (engine.log.routing): run id → home partition across repartitionings.

Besides examples, a model of the whole protocol is run under random schedules: partitions
as FIFO queues, workers with stale partition maps, clients sending to any partition, repeated
StartRuns, eras added mid-way. Whatever the order, a run is created on one partition only and
every command for an existing run reaches the partition it lives on.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.log.port import partition_for
from engine.log.routing import (
    Forward,
    Handle,
    PartitionMap,
    Refuse,
    RoutingError,
    candidates,
    home,
    needs_newer_map,
    route,
)

GROWN = PartitionMap((4, 8, 12))


def a_run_whose_homes_differ(partition_map: PartitionMap, count: int) -> str:
    return next(
        run_id
        for run_id in (f"run-{n}" for n in range(10_000))
        if len(candidates(run_id, partition_map)) == count
    )


# -- the partition map ---------------------------------------------------------------------


def test_a_map_round_trips_and_grows() -> None:
    grown = PartitionMap.single(4).grown(8)
    assert grown == PartitionMap((4, 8))
    assert PartitionMap.decode(grown.encode()) == grown
    assert grown.encode() == b"4,8"
    assert (grown.partitions, grown.era) == (8, 1)


@pytest.mark.parametrize("eras", [(), (4, 4), (8, 4), (0,), (10_001,), tuple(range(1, 66))])
def test_impossible_maps_are_refused(eras: tuple[int, ...]) -> None:
    with pytest.raises(RoutingError):
        PartitionMap(eras)


@pytest.mark.parametrize(
    "data", [b"", b"4,", b"4,,8", b"-4", b"4;8", b"4, 8", b"1" * 400, b"99999999", b"\xff"]
)
def test_hostile_map_records_are_refused(data: bytes) -> None:
    with pytest.raises(RoutingError):
        PartitionMap.decode(data)


def test_partitions_are_only_added() -> None:
    with pytest.raises(RoutingError, match="only be added"):
        PartitionMap.single(8).grown(8)


# -- homes and candidates ----------------------------------------------------------------


def test_a_never_repartitioned_deployment_routes_by_murmur2() -> None:
    single = PartitionMap.single(6)
    for n in range(50):
        run_id = f"r{n}"
        assert home(run_id, single) == partition_for(run_id, 6)
        assert candidates(run_id, single) == (partition_for(run_id, 6),)


def test_candidates_are_newest_first_and_unique() -> None:
    for n in range(200):
        run_id = f"r{n}"
        found = candidates(run_id, GROWN)
        expected = [partition_for(run_id, count) for count in (12, 8, 4)]
        assert found[0] == home(run_id, GROWN) == expected[0]
        assert list(found) == list(dict.fromkeys(expected))


# -- single steps ------------------------------------------------------------------------


def test_a_run_known_here_is_handled_here_whatever_the_header() -> None:
    run_id = a_run_whose_homes_differ(GROWN, 3)
    oldest = candidates(run_id, GROWN)[-1]
    assert route(run_id, oldest, None, GROWN, known_here=True) == Handle()
    assert route(run_id, oldest, b"visit:2:2", GROWN, known_here=True) == Handle()


def test_a_command_from_a_client_goes_to_the_newest_home_first() -> None:
    run_id = a_run_whose_homes_differ(GROWN, 3)
    newest = home(run_id, GROWN)
    elsewhere = (newest + 1) % GROWN.partitions
    assert route(run_id, elsewhere, None, GROWN, known_here=False) == Forward(newest, b"visit:2:0")


def test_an_unknown_run_walks_every_older_home_then_settles_at_the_newest() -> None:
    run_id = a_run_whose_homes_differ(GROWN, 3)
    homes = candidates(run_id, GROWN)
    assert route(run_id, homes[0], None, GROWN, known_here=False) == Forward(homes[1], b"visit:2:1")
    assert route(run_id, homes[1], b"visit:2:1", GROWN, known_here=False) == Forward(
        homes[2], b"visit:2:2"
    )
    assert route(run_id, homes[2], b"visit:2:2", GROWN, known_here=False) == Forward(
        homes[0], b"settled:2:0"
    )
    assert route(run_id, homes[0], b"settled:2:0", GROWN, known_here=False) == Handle()


def test_with_one_home_a_new_run_is_handled_at_once() -> None:
    run_id = a_run_whose_homes_differ(GROWN, 1)
    assert route(run_id, home(run_id, GROWN), None, GROWN, known_here=False) == Handle()


@pytest.mark.parametrize(
    "header",
    [b"settled:2:0", b"visit:2:1", b"visit:1:0", b"nonsense", b"visit:2:999", b"x" * 500],
)
def test_a_header_that_does_not_fit_restarts_the_walk(header: bytes) -> None:
    """Settled somewhere else, a candidate that is not this partition, an older era, garbage:
    the walk starts again from the newest home; nothing is skipped."""
    run_id = a_run_whose_homes_differ(GROWN, 3)
    homes = candidates(run_id, GROWN)
    stranger = next(p for p in range(GROWN.partitions) if p not in homes)
    assert route(run_id, stranger, header, GROWN, known_here=False) == Forward(
        homes[0], b"visit:2:0"
    )


def test_a_record_routed_under_a_newer_map_asks_for_that_map() -> None:
    older = PartitionMap((4, 8))
    run_id = a_run_whose_homes_differ(GROWN, 3)
    assert needs_newer_map(b"visit:2:1", older)
    assert not needs_newer_map(b"visit:2:1", GROWN)
    assert not needs_newer_map(None, older)
    refused = route(run_id, 0, b"visit:2:1", older, known_here=False)
    assert isinstance(refused, Refuse)
    assert "reload" in refused.reason


def test_with_a_route_key_a_forged_header_cannot_skip_a_home() -> None:
    key = b"k" * 32
    run_id = a_run_whose_homes_differ(GROWN, 3)
    homes = candidates(run_id, GROWN)
    forged = route(run_id, homes[0], b"settled:2:0", GROWN, known_here=False, key=key)
    assert isinstance(forged, Forward)
    assert forged.partition == homes[1]  # the walk goes on: settled was not believed
    honest = route(run_id, homes[2], b"visit:2:2", GROWN, known_here=False, key=key)
    assert isinstance(honest, Forward)
    assert honest.header.startswith(b"visit:2:0.") or honest.header.startswith(b"settled:2:0.")
    walked = _walk(run_id, homes[0], None, GROWN, key)
    assert walked == [homes[0], homes[1], homes[2], homes[0]]


def _walk(
    run_id: str, partition: int, header: bytes | None, partition_map: PartitionMap, key: bytes
) -> list[int]:
    visited = [partition]
    while True:
        step = route(run_id, partition, header, partition_map, known_here=False, key=key)
        if not isinstance(step, Forward):
            return visited
        partition, header = step.partition, step.header
        visited.append(partition)


# -- the protocol under random schedules ------------------------------------------------


@dataclass
class World:
    """Partitions as FIFO queues of (command, run, header); one worker view per partition."""

    recorded: list[PartitionMap]
    physical: int
    views: dict[int, PartitionMap]
    queues: dict[int, deque[tuple[str, str, bytes | None, int]]] = field(default_factory=dict)
    lives: dict[str, set[int]] = field(default_factory=dict)
    unknown_decisions: list[str] = field(default_factory=list)

    def send(self, command: str, run_id: str, partition: int) -> None:
        queue = self.queues.setdefault(partition % self.physical, deque())
        queue.append((command, run_id, None, 0))

    def grow(self, partitions: int) -> None:
        self.physical = partitions  # partitions first, then the era is recorded
        self.recorded.append(self.recorded[-1].grown(partitions))

    def refresh(self, partition: int) -> None:
        self.views[partition] = self.recorded[-1]  # an assignment reloads the map

    def deliver(self, partition: int) -> None:
        queue = self.queues.get(partition)
        if not queue:
            return
        command, run_id, header, hops = queue.popleft()
        # A walk visits each era's home once, then settles; a restart after a new era adds one.
        assert hops <= 3 * len(self.recorded), f"{command} {run_id} walked {hops} hops"
        view = self.views.setdefault(partition, self.recorded[0])
        if needs_newer_map(header, view):
            view = self.views[partition] = self.recorded[-1]
        known = partition in self.lives.get(run_id, set())
        step = route(run_id, partition, header, view, known_here=known)
        assert not isinstance(step, Refuse), step
        if isinstance(step, Forward):
            assert step.partition < self.physical
            forwarded = (command, run_id, step.header, hops + 1)
            self.queues.setdefault(step.partition, deque()).append(forwarded)
        elif command == "start":
            self.lives.setdefault(run_id, set()).add(partition)
        elif not known:
            self.unknown_decisions.append(run_id)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("start"), st.integers(0, 5), st.integers(0, 63)),
        st.tuples(st.just("decide"), st.integers(0, 5), st.integers(0, 63)),
        st.tuples(st.just("grow"), st.integers(1, 6), st.just(0)),
        st.tuples(st.just("refresh"), st.integers(0, 63), st.just(0)),
        st.tuples(st.just("deliver"), st.integers(0, 63), st.just(0)),
    ),
    max_size=120,
)


@settings(max_examples=400, deadline=None)
@given(operations)
def test_no_schedule_creates_a_run_twice_or_loses_a_command(
    ops: list[tuple[str, int, int]],
) -> None:
    world = World(recorded=[PartitionMap.single(2)], physical=2, views={})
    decided: list[str] = []
    for op, a, b in ops:
        run_id = f"run-{a}"
        if op == "start":
            world.send("start", run_id, b)
        elif op == "decide" and run_id in world.lives:  # a decision follows the run's start
            world.send("decide", run_id, b)
            decided.append(run_id)
        elif op == "grow" and len(world.recorded) < 5:
            world.grow(world.physical + a)
        elif op == "refresh":
            world.refresh(a % world.physical)
        elif op == "deliver":
            world.deliver(a % world.physical)
    while any(world.queues.values()):  # let every walk finish
        for partition in list(world.queues):
            world.deliver(partition)
    for run_id, partitions in world.lives.items():
        assert len(partitions) == 1, f"{run_id} created on {sorted(partitions)}"
    assert world.unknown_decisions == []
