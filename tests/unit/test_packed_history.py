"""A history packed into its events' exact bytes (`engine.core.packed`) reads as the decoded
list it replaces, and a `LiveRun` packs only when every event's bytes are its own."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.core.live_run import LiveRun
from engine.core.packed import PackedHistory
from events.approval import ApprovalRequest
from events.codec import Codec
from events.envelope import EventEnvelope, hash_encoded
from events.run_events import (
    InterruptRaised,
    RunEventPayload,
    RunStarted,
    ToolCallCompleted,
)

CODEC = Codec()


def _payload(seq: int) -> RunEventPayload:
    if seq == 0:
        return RunStarted(input={"order_id": "o-1"}, requested_by="alice", command_id="c0")
    if seq == 3:
        request = ApprovalRequest(
            kind="tool", title="refund(o-1)", tool="refund", args={"amount": 2400}
        )
        return InterruptRaised(interrupt_id="i-1", call=seq, request=request)
    return ToolCallCompleted(call=seq, result={"n": seq, "text": "é" * seq})


def _recorded(run: LiveRun, count: int, *, keep: bool = True) -> list[bytes]:
    """Record `count` events on `run` as a worker does (each chained to the last)."""
    out = []
    for seq in range(run.next_seq, run.next_seq + count):
        envelope = run.envelope(
            _payload(seq),
            event_id=f"e{seq}",
            occurred_at_us=1_000 + seq,
            agent="refund",
            agent_version="1",
            causation_id=f"cause-{seq}",
        )
        encoded = CODEC.encode(envelope)
        run.record(envelope, encoded, keep=keep)
        out.append(encoded)
    return out


def _decoded(encoded: list[bytes]) -> list[EventEnvelope]:
    return [CODEC.decode_event(value) for value in encoded]


def test_a_packed_history_reads_as_its_decoded_events() -> None:
    encoded = _recorded(LiveRun("r", 0), 5)
    events = _decoded(encoded)
    packed = PackedHistory(encoded, CODEC.decode_event)

    assert len(packed) == 5
    assert list(packed) == events
    assert list(reversed(packed)) == events[::-1]
    assert packed.encoded() == encoded
    assert packed.unpack() == (events, encoded)


@pytest.mark.parametrize("index", [0, 1, 4, -1, -5])
def test_indexing_decodes_that_event(index: int) -> None:
    encoded = _recorded(LiveRun("r", 0), 5)
    assert PackedHistory(encoded, CODEC.decode_event)[index] == _decoded(encoded)[index]


@pytest.mark.parametrize("cut", [slice(0, 3), slice(None, -1), slice(2, None), slice(9, 12)])
def test_slices_are_decoded_lists(cut: slice) -> None:
    encoded = _recorded(LiveRun("r", 0), 5)
    assert PackedHistory(encoded, CODEC.decode_event)[cut] == _decoded(encoded)[cut]


def test_out_of_range_is_an_index_error() -> None:
    packed = PackedHistory(_recorded(LiveRun("r", 0), 2), CODEC.decode_event)
    with pytest.raises(IndexError):
        packed[2]
    with pytest.raises(IndexError):
        packed[-3]


def test_an_empty_history_packs_to_nothing() -> None:
    packed = PackedHistory([], CODEC.decode_event)
    assert len(packed) == 0
    assert not packed
    assert list(packed) == []


def test_a_packed_run_unpacks_when_it_moves_on_and_goes_on_as_an_unpacked_one() -> None:
    kept, plain = LiveRun("r", 0), LiveRun("r", 0)
    first = _recorded(kept, 4)
    _recorded(plain, 4, keep=False)

    assert kept.pack(CODEC.decode_event)
    assert kept.packed
    assert kept.next_seq == 4
    assert kept.last_hash == plain.last_hash
    assert kept.started == plain.started
    assert list(kept.recorded) == plain.history
    assert kept.packed  # reading did not unpack it

    more = _recorded(kept, 2)  # a decision came: the run moves on
    _recorded(plain, 2, keep=False)

    assert not kept.packed
    assert kept.history == plain.history
    assert kept.state == plain.state
    assert kept.last_hash == plain.last_hash == hash_encoded(more[-1])
    assert kept.history[4].prev_hash == hash_encoded(first[-1])  # the chain goes on
    assert kept.pack(CODEC.decode_event)  # and packs again, the new bytes with the old
    assert list(kept.recorded) == plain.history


def test_a_run_without_every_events_bytes_does_not_pack() -> None:
    never = LiveRun("r", 0)
    _recorded(never, 3, keep=False)
    gap = LiveRun("r", 0)
    _recorded(gap, 2)
    _recorded(gap, 1, keep=False)  # e.g. a sealed event: its bytes are not what it holds
    _recorded(gap, 1)

    assert not never.pack(CODEC.decode_event)
    assert not gap.pack(CODEC.decode_event)
    assert not LiveRun("r", 0).pack(CODEC.decode_event)  # nothing recorded
    assert not never.packed
    assert not gap.packed


def test_a_history_replaced_by_other_events_no_longer_packs() -> None:
    same, opened = LiveRun("r", 0), LiveRun("r", 0)
    _recorded(same, 3)
    _recorded(opened, 3)
    changed = [replace(e, causation_id="opened") if e.seq == 1 else e for e in opened.history]

    same.replace_history(list(same.history))
    opened.replace_history(changed)

    assert same.pack(CODEC.decode_event)
    assert not opened.pack(CODEC.decode_event)
    assert opened.history == changed
