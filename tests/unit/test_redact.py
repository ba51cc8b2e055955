"""Redacted histories (events.redact): no personal field left, and agent code that passes
values along still replays identically against them."""

from __future__ import annotations

from engine.core.rerun import rerun
from events.codec import Codec
from events.history_file import read_history, write_history
from events.redact import Redactor, redact_run
from tests.replay_helpers import chained
from tests.unit.test_rerun import make_app, record, recorded

CODEC = Codec()
PERSONAL = (b"bob", b"carol", b"alice", b"A-17", b"c-42", b"damaged in transit", b"rf-1")


def test_nothing_personal_is_left_and_the_run_still_replays() -> None:
    original = record()
    redacted = redact_run(CODEC, original)

    for raw in redacted:
        for word in PERSONAL:
            assert word not in raw, word
    history = read_history(CODEC, write_history(CODEC, redacted, redacted=True))
    assert history.redacted
    assert [e.seq for e in history.events] == [e.seq for e in original]
    report = rerun(make_app(recorded), history.events)
    assert (report.outcome, report.reason) == ("identical", "")
    assert history.events[0].payload.requested_by == "person-1"  # type: ignore[union-attr]


def test_the_same_value_gets_the_same_token_and_roles_stay() -> None:
    redactor = Redactor()
    value = redactor.json({"a": "x", "b": ["x", {"c": "y"}], "n": 3, "t": True})

    assert value == {"a": "s-1", "b": ["s-1", {"c": "s-2"}], "n": 3, "t": True}
    assert redactor.person("bob") == redactor.person("bob") == "person-1"
    assert redactor.person("role:support-lead") == "role:support-lead"
    assert redactor.person("system:timeout") == "system:timeout"


def test_deep_values_are_redacted_without_recursion() -> None:
    deep: object = "secret"
    for _ in range(5000):
        deep = [deep]
    redacted = Redactor().json(deep)  # type: ignore[arg-type]
    for _ in range(5000):
        assert isinstance(redacted, list)
        redacted = redacted[0]
    assert redacted == "s-1"


def test_a_redacted_run_is_a_chain_of_its_own() -> None:
    original = chained(CODEC, record())
    redacted = redact_run(CODEC, record())
    assert redacted != original
    assert (
        read_history(CODEC, write_history(CODEC, redacted)).head
        != read_history(CODEC, write_history(CODEC, original)).head
    )
