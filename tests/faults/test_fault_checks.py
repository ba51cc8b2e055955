"""The suite's checks can fail: each promise's check, fed a history that breaks it, says so
(no server; a green fault run means something only if these are red on bad histories)."""

from __future__ import annotations

from typing import Any

from events.codec import Codec
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.run_events import (
    DecisionAccepted,
    RunCompleted,
    RunEventPayload,
    RunStarted,
    ToolCallCompleted,
    ToolCallScheduled,
)
from examples.chaos import app
from tests.faults.harness import Sent, verify
from tests.faults.worker import tagged_uuid, writer_of

CODEC = Codec()
Runs = dict[str, list[tuple[int, int, EventEnvelope, bytes]]]


def _history(
    run_id: str, payloads: list[RunEventPayload], *, seqs: list[int] | None = None
) -> Runs:
    out = []
    previous = GENESIS_HASH
    for index, payload in enumerate(payloads):
        envelope = EventEnvelope(
            event_id=tagged_uuid(),
            run_id=run_id,
            seq=seqs[index] if seqs else index,
            occurred_at_us=index,
            agent="chaos",
            agent_version="1",
            causation_id="c",
            correlation_id="c",
            prev_hash=previous,
            payload=payload,
        )
        data = CODEC.encode(envelope)
        previous = hash_encoded(data)
        out.append((0, index, envelope, data))
    return {run_id: out}


def _schedule(call: int, tool: str, idempotent: bool) -> ToolCallScheduled:
    return ToolCallScheduled(
        call=call,
        tool=tool,
        args={},
        args_digest="d",
        idempotency_key=f"r:{call}",
        idempotent=idempotent,
    )


STARTED = RunStarted(input={}, requested_by="x", command_id="c")


def _verify(runs: Runs, sent: dict[str, Sent] | None = None, effects: Any = ()) -> list[str]:
    return verify(runs, ["r"], sent or {}, list(effects), app).violations


def test_a_good_history_passes() -> None:
    runs = _history(
        "r",
        [
            STARTED,
            _schedule(1, "reserve", False),
            ToolCallCompleted(call=1, result=None),
            RunCompleted(output=None),
        ],
    )
    assert _verify(runs, effects=[{"tool": "reserve", "key": "r:1", "pid": 1}]) == []


def test_a_duplicate_seq_is_found() -> None:
    runs = _history("r", [STARTED, STARTED, RunCompleted(output=None)], seqs=[0, 0, 1])
    assert any("seq" in v for v in _verify(runs))


def test_an_unfinished_run_is_found() -> None:
    assert any("did not complete" in v for v in _verify(_history("r", [STARTED])))


def test_a_lost_decision_is_found() -> None:
    runs = _history("r", [STARTED, RunCompleted(output=None)])
    sent = {"d1": Sent("r", "i1", "approve", 0.0)}
    assert any("lost" in v for v in _verify(runs, sent))


def test_a_decision_applied_twice_is_found() -> None:
    accepted = DecisionAccepted(interrupt_id="i1", decision_id="d1", kind="approve", decided_by="a")
    runs = _history("r", [STARTED, accepted, accepted, RunCompleted(output=None)])
    found = _verify(runs, {"d1": Sent("r", "i1", "approve", 0.0)})
    assert any("applied 2 times" in v for v in found)
    assert any("closed 2 times" in v for v in found)


def test_a_silent_rerun_of_a_non_idempotent_tool_is_found() -> None:
    runs = _history(
        "r",
        [
            STARTED,
            _schedule(1, "reserve", False),
            ToolCallCompleted(call=1, result=None),
            RunCompleted(output=None),
        ],
    )
    twice = [{"tool": "reserve", "key": "r:1", "pid": p} for p in (1, 2)]
    assert any("ran 2 times" in v for v in _verify(runs, effects=twice))


def test_an_idempotent_result_without_its_effect_is_found() -> None:
    runs = _history(
        "r",
        [
            STARTED,
            _schedule(1, "fetch", True),
            ToolCallCompleted(call=1, result=None),
            RunCompleted(output=None),
        ],
    )
    assert any("without its effect" in v for v in _verify(runs))


def test_event_ids_name_their_writer() -> None:
    import os

    assert writer_of(tagged_uuid()) == os.getpid()
