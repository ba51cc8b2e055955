"""The divergence explanation a parked run carries: both calls, what differs, where, the fix."""

from __future__ import annotations

import pytest

from engine.core.divergence import ABSENT, ArgChange, CallShape, Divergence, diff_args
from events.json import JsonObject
from events.limits import MAX_ECHO_CHARS, MAX_ERROR_CHARS


def test_arguments_that_differ_are_listed_by_name_with_absent_ones_named() -> None:
    changes = diff_args({"to": "ann", "n": 1, "same": [1]}, {"to": "bob", "same": [1], "cc": "x"})

    assert changes == (
        ArgChange("cc", ABSENT, '"x"'),
        ArgChange("n", "1", ABSENT),
        ArgChange("to", '"ann"', '"bob"'),
    )


def test_values_that_are_not_objects_differ_as_a_whole() -> None:
    assert diff_args("Ship?", "Ship?") == ()
    assert diff_args("Ship?", "Send?") == (ArgChange("(value)", '"Ship?"', '"Send?"'),)


def test_same_call_other_arguments_points_at_unrecorded_values() -> None:
    divergence = Divergence(
        3,
        CallShape("tool", "log_note", {"text": "n 17"}),
        CallShape("tool", "log_note", {"text": "n 42"}, "agent.py:12 in run"),
    )

    text = divergence.explain("run-9")

    assert text.splitlines() == [
        "step 3 does not replay: the history has a different call there",
        '  recorded: tool log_note {"text":"n 17"}',
        '  now:      tool log_note {"text":"n 42"}',
        "  arguments that differ:",
        '    text: recorded "n 17", now "n 42"',
        "  made at:  agent.py:12 in run",
        f"likely fix: {divergence.hint()}",
        "then resume the run (countersign runs resume-parked run-9) or cancel it",
    ]
    assert "ctx.random(), ctx.now() and ctx.uuid()" in divergence.hint()


@pytest.mark.parametrize(
    ("new", "fix"),
    [
        (CallShape("tool", "refund", {"amount": 3}), "makes another call at this step"),
        (CallShape("value", "now"), "makes another call at this step"),
        (None, "now ends before this step"),
    ],
    ids=["other-tool", "value-for-tool", "returned"],
)
def test_another_call_or_none_points_at_versions_and_patches(
    new: CallShape | None, fix: str
) -> None:
    divergence = Divergence(0, CallShape("tool", "lookup", {"id": 1}), new)

    assert fix in divergence.hint()
    assert 'ctx.patched("change-id")' in divergence.hint()
    assert "arguments that differ" not in divergence.explain()
    shown = new.describe() if new is not None else "(no call)"
    assert f"  now:      {shown}" in divergence.explain()


def test_huge_arguments_are_clipped_so_the_message_stays_bounded() -> None:
    huge: JsonObject = {f"k{i}": "x" * 5_000 for i in range(50)}
    divergence = Divergence(0, CallShape("tool", "t", huge), CallShape("tool", "t", {}))

    text = divergence.explain()

    assert len(text) <= MAX_ERROR_CHARS
    assert all(len(line) < MAX_ECHO_CHARS + 60 for line in text.splitlines()[:3])


def test_a_recorded_call_whose_arguments_were_not_kept_shows_no_diff() -> None:
    divergence = Divergence(1, CallShape("tool", "t", None), CallShape("tool", "t", {"a": 1}))

    assert divergence.changes == ()
    assert "  recorded: tool t\n" in divergence.explain()
