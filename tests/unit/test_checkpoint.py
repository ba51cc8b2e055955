"""The restore checkpoint (pure): what it says, and that a restore from it finds every run a
restore from offset 0 would keep."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.checkpoint import Checkpoint, Horizon, RecordKind, RestoreScan
from events.codec import Codec
from events.errors import DecodeError

CODEC = Codec()


def test_a_checkpoint_round_trips_through_the_codec() -> None:
    for checkpoint in (
        Checkpoint(restore_from=0),
        Checkpoint(restore_from=17, consumed=4),
        Checkpoint(restore_from=17, consumed=4, attempt_at=4, attempts=2),
    ):
        assert CODEC.decode_checkpoint(CODEC.encode(checkpoint)) == checkpoint


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        b'{"v":1,"restore_from":1,"consumed":null}',  # the JSON of the first release: unread
        CODEC.encode(Checkpoint(restore_from=1))[:-1],
        CODEC.encode(Checkpoint(restore_from=1)) + b"\x00",
    ],
)
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        CODEC.decode_checkpoint(data)


@pytest.mark.parametrize("field", ["restore_from", "consumed", "attempt_at", "attempts"])
def test_negative_or_non_integer_offsets_are_not_a_checkpoint(field: str) -> None:
    base = {"restore_from": 0}
    with pytest.raises(ValueError, match="checkpoint"):
        Checkpoint(**{**base, field: -1})  # type: ignore[arg-type]


def test_the_horizon_is_the_first_offset_of_the_oldest_run_kept() -> None:
    horizon = Horizon(keep_finished=1, next_offset=10)
    assert horizon.restore_from == 10  # nothing kept: the next offset
    horizon.started("a")  # not committed yet: a lower bound
    horizon.committed({}, 12)
    horizon.started("b")
    assert horizon.restore_from == 10

    assert horizon.finished("a") == []  # kept: the last finished run
    assert horizon.restore_from == 10
    horizon.found("c", 15)
    assert horizon.finished("c") == ["a"]  # only one finished run is kept
    assert horizon.restore_from == 12  # b
    assert horizon.finished("b") == ["c"]
    assert horizon.restore_from == 12  # b, as the last finished run (a lower bound)
    horizon.committed({}, 20)
    horizon.started("d")
    assert horizon.finished("d") == ["b"]
    assert horizon.restore_from == 20


def test_keeping_no_finished_run_forgets_each_at_once() -> None:
    horizon = Horizon(keep_finished=0)
    horizon.found("a", 3)
    assert horizon.finished("a") == ["a"]
    assert horizon.finished("a") == []  # once only
    assert len(horizon) == 0


def test_a_scan_skips_runs_that_started_before_it_and_keeps_the_last_finished() -> None:
    scan = RestoreScan(keep_finished=1)
    records: list[tuple[str, RecordKind]] = [
        ("old", "other"),  # started before the range: forgotten
        ("a", "start"),
        ("b", "start"),
        ("old", "end"),
        ("a", "end"),
        ("c", "start"),
        ("b", "other"),
        ("c", "end"),  # a is no longer among the last finished
    ]
    for offset, (run_id, kind) in enumerate(records):
        scan.add(run_id, offset, b"%d" % offset, kind)

    assert list(scan.live) == ["b"]
    assert [e.offset for e in scan.live["b"]] == [2, 6]
    assert list(scan.finished) == ["c"]
    assert scan.skipped == 2
    assert scan.kept == 4


# A worker's life on one partition: steps of operations, each committed as one transaction.
_Op = tuple[str, int]  # ("start" | "event" | "finish", run number)
_steps = st.lists(
    st.lists(
        st.tuples(st.sampled_from(["start", "event", "finish"]), st.integers(0, 30)), max_size=6
    ),
    max_size=40,
)


def _live_through(
    steps: list[list[_Op]], keep: int, markers: bool, exact: bool = True
) -> tuple[list[tuple[str, int, RecordKind]], int]:
    """Apply the steps as the worker does; the records in the log and the last checkpoint."""
    horizon = Horizon(keep)
    log: list[tuple[str, int, RecordKind]] = []
    status: dict[str, str] = {}
    checkpoint = 0
    for step in steps:
        pending: list[tuple[str, RecordKind]] = []
        for op, number in step:
            run_id = f"r{number}"
            state = status.get(run_id)
            if op == "start" and state is None:
                horizon.started(run_id)
                pending.append((run_id, "start"))
                status[run_id] = "live"
            elif op == "event" and state == "live":
                pending.append((run_id, "other"))
            elif op == "finish" and state == "live":
                horizon.finished(run_id)
                pending.append((run_id, "end"))
                status[run_id] = "done"
        if not pending:
            continue
        checkpoint = horizon.restore_from  # written in the same transaction
        offset = len(log)
        firsts: dict[str, int] = {}
        for run_id, kind in pending:
            log.append((run_id, offset, kind))
            firsts.setdefault(run_id, offset)
            offset += 1
        if markers:  # Kafka: the commit marker takes an offset
            log.append(("", offset, "other"))
        horizon.committed(firsts if exact else {}, offset)
    return log, checkpoint


@settings(max_examples=300, deadline=None)
@given(steps=_steps, keep=st.integers(0, 4), markers=st.booleans(), exact=st.booleans())
def test_a_restore_from_the_checkpoint_keeps_what_a_restore_from_zero_keeps(
    steps: list[list[_Op]], keep: int, markers: bool, exact: bool
) -> None:
    log, checkpoint = _live_through(steps, keep, markers, exact)
    full, partial = RestoreScan(keep), RestoreScan(keep)
    for run_id, offset, kind in log:
        if run_id:
            full.add(run_id, offset, b"", kind)
            if offset >= checkpoint:
                partial.add(run_id, offset, b"", kind)

    assert list(partial.live) == list(full.live)
    assert list(partial.finished) == list(full.finished)
    for run_id, events in full.live.items():
        assert [e.offset for e in partial.live[run_id]] == [e.offset for e in events]
    assert partial.kept == full.kept


def test_a_commit_makes_the_first_offsets_of_the_runs_it_started_exact() -> None:
    horizon = Horizon(keep_finished=1, next_offset=5)
    horizon.started("a")
    horizon.started("b")
    assert horizon.restore_from == 5
    horizon.committed({"a": 7, "b": 9, "other": 6}, 11)
    assert horizon.restore_from == 7
    assert horizon.finished("a") == []
    horizon.started("c")
    assert horizon.finished("b") == ["a"]
    assert horizon.restore_from == 9
