"""The chain check a restore runs on each run's records: what extends the chain from seq 0,
and every other record with the reason it does not."""

from __future__ import annotations

from dataclasses import replace

from engine.core.integrity import check_run
from events.codec import Codec
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.run_events import RunEventPayload, RunStarted, ToolCallCompleted

CODEC = Codec()


def _chain(count: int, run_id: str = "r") -> list[bytes]:
    out: list[bytes] = []
    prev = GENESIS_HASH
    for seq in range(count):
        payload: RunEventPayload = (
            RunStarted(input={}, requested_by="a", command_id="c")
            if seq == 0
            else ToolCallCompleted(call=seq, result=seq)
        )
        encoded = CODEC.encode(_envelope(run_id, seq, prev, payload))
        out.append(encoded)
        prev = hash_encoded(encoded)
    return out


def _envelope(run_id: str, seq: int, prev: str, payload: RunEventPayload) -> EventEnvelope:
    return EventEnvelope(
        event_id=f"e{seq}",
        run_id=run_id,
        seq=seq,
        occurred_at_us=seq,
        agent="a",
        agent_version="1",
        causation_id="c",
        correlation_id="c",
        prev_hash=prev,
        payload=payload,
    )


def _check(values: list[bytes]) -> tuple[list[int], list[tuple[int, str]]]:
    checked = check_run(lambda _, value: CODEC.decode_event(value), "r", enumerate(values))
    return (
        [event.seq for event, _, _ in checked.chain],
        [(stray.offset, stray.why) for stray in checked.strays],
    )


def test_a_clean_run_is_all_chain() -> None:
    assert _check(_chain(4)) == ([0, 1, 2, 3], [])


def test_junk_another_runs_event_and_a_duplicate_are_strays() -> None:
    good = _chain(3)
    other = _chain(1, run_id="someone-else")[0]
    seqs, strays = _check([good[0], b"junk", good[1], other, good[1], good[2]])
    assert seqs == [0, 1, 2]
    assert [offset for offset, _ in strays] == [1, 3, 4]
    assert strays[0][1].startswith("undecodable")
    assert "someone-else" in strays[1][1]
    assert strays[2][1] == "a duplicate of seq 1"


def test_a_fork_keeps_the_first_and_names_the_second() -> None:
    good = _chain(3)
    first = CODEC.decode_event(good[2])
    forged = CODEC.encode(
        replace(first, event_id="forged", payload=ToolCallCompleted(call=9, result="x"))
    )
    seqs, strays = _check([*good, forged])
    assert seqs == [0, 1, 2]
    assert strays == [(3, "a second event at seq 2 (a fork; the first in the log is kept)")]


def test_a_gap_and_an_unchained_record_are_strays() -> None:
    good = _chain(4)
    unchained = CODEC.encode(replace(CODEC.decode_event(good[3]), prev_hash="0" * 64))
    seqs, strays = _check([good[0], good[1], good[3], unchained])
    assert seqs == [0, 1]
    assert strays == [
        (2, "seq 3 where 2 comes next (a gap)"),
        (3, "seq 3 where 2 comes next (a gap)"),
    ]
    seqs, strays = _check([good[0], good[1], good[2], unchained])
    assert seqs == [0, 1, 2]
    assert strays == [(3, "seq 3 does not carry the hash of seq 2")]


def test_a_forgery_that_chains_perfectly_is_not_caught_here() -> None:
    """What the chain alone cannot tell: the signed anchors of the audit can."""
    good = _chain(2)
    last = CODEC.decode_event(good[1])
    forged = _envelope("r", 2, hash_encoded(good[1]), ToolCallCompleted(call=5, result="forged"))
    assert last.seq == 1
    seqs, strays = _check([*good, CODEC.encode(forged)])
    assert (seqs, strays) == ([0, 1, 2], [])
