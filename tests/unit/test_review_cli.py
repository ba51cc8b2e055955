"""What a reviewer types becomes a decision (pure parts): the run's one open request, `--set`
merged over the proposed arguments and validated, a plain-text answer; and the card shows
everything, what changed first."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from countersign.cli_review import render_card, resumed_status
from countersign.decision_input import choose_interrupt, merged_edit, parse_sets, response_of
from engine.errors import ConfigurationError
from events.approval import ApprovalRequest
from events.envelope import EventEnvelope
from events.json import JsonObject
from events.run_events import InterruptRaised, RunEventPayload, RunParked, RunResumed
from projections.card import ReviewCard, previous_args
from projections.rows import InterruptRow

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
SCHEMA: JsonObject = {
    "type": "object",
    "properties": {
        "to": {"type": "string"},
        "subject": {"type": "string"},
        "body": {"type": "string"},
    },
    "required": ["to", "subject", "body"],
    "additionalProperties": False,
}
PROPOSED: JsonObject = {"to": "ann@example.com", "subject": "Refund", "body": "Dear Ann"}


def row(**changes: object) -> InterruptRow:
    base = InterruptRow(
        interrupt_id="i-2",
        run_id="run-1",
        seq=7,
        call=2,
        kind="tool",
        title="send_email(...)",
        tool="send_email",
        args={**PROPOSED, "to": "eve@example.com"},
        risk="high",
        amount=None,
        policy="outbound@1",
        approvers=("role:support",),
        allowed=("approve", "edit", "reject"),
        deadline=NOW + timedelta(hours=2, minutes=3, seconds=4),
        on_timeout="reject",
        level=1,
        quorum=1,
        votes=0,
        status="open",
        raised_at=NOW - timedelta(minutes=5),
        closed_at=None,
        decided_by=None,
        decision_kind=None,
        reason=None,
        agent="mailer",
        requested_by="bob",
        excluded=("carol",),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def request(**changes: object) -> ApprovalRequest:
    base = ApprovalRequest(
        kind="tool",
        title='send_email(to="eve@example.com", subject="Refund", body="Dear Ann")',
        tool="send_email",
        args={**PROPOSED, "to": "eve@example.com"},
        digest="d" * 64,
        reasoning="the customer asked",
        context={"ticket": 42, "history": ["first mail", "second mail"]},
        risk="high",
        allowed=("approve", "edit", "reject"),
        approvers=("role:support",),
        policy="outbound@1",
        rule="always",
        args_schema=SCHEMA,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# -- choosing the request -----------------------------------------------------------------------


def test_the_only_open_request_is_chosen_and_several_are_named() -> None:
    assert choose_interrupt("run-1", [row()], None) == "i-2"
    assert choose_interrupt("run-1", [row(), row(interrupt_id="i-3")], "i-3") == "i-3"
    with pytest.raises(ConfigurationError, match=r"has 2 open requests; name one: i-2 .*; i-3"):
        choose_interrupt("run-1", [row(), row(interrupt_id="i-3")], None)
    with pytest.raises(ConfigurationError, match="has no open request"):
        choose_interrupt("run-1", [], None)


# -- --set ----------------------------------------------------------------------------------------


def test_sets_are_json_when_they_are_text_otherwise_and_files_by_at() -> None:
    files = {"draft.txt": "Dear Ann,\nyour refund is on its way."}

    values = parse_sets(
        ["amount=900", "body=@draft.txt", "note=ship by DHL", "flag=true", 'code:="007"', "e="],
        files.__getitem__,
    )

    assert values == {
        "amount": 900,
        "body": "Dear Ann,\nyour refund is on its way.",
        "note": "ship by DHL",
        "flag": True,
        "code": "007",
        "e": "",
    }


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("body", "use NAME=VALUE"),
        ("=x", "is not an argument name"),
        ("a b=1", "is not an argument name"),
        ("n:=nope", "is not valid JSON"),
    ],
)
def test_a_malformed_set_is_refused_before_anything_is_sent(item: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_sets([item], lambda path: "")


def test_too_many_sets_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="at most 100"):
        parse_sets([f"a{i}=1" for i in range(101)], lambda path: "")


def test_a_partial_edit_is_merged_over_the_proposal_and_validated() -> None:
    edited = merged_edit(PROPOSED, {"body": "Dear Ann, sorry"}, SCHEMA, None)

    assert edited == {"to": "ann@example.com", "subject": "Refund", "body": "Dear Ann, sorry"}
    with pytest.raises(ConfigurationError, match="cc is not an accepted argument"):
        merged_edit(PROPOSED, {"cc": "x"}, SCHEMA, None)
    with pytest.raises(ConfigurationError, match="either --args"):
        merged_edit(PROPOSED, {"body": "x"}, SCHEMA, PROPOSED)
    with pytest.raises(ConfigurationError, match="needs --set"):
        merged_edit(PROPOSED, {}, SCHEMA, None)
    assert merged_edit(PROPOSED, {}, SCHEMA, {**PROPOSED, "body": "all"})["body"] == "all"


@pytest.mark.parametrize(
    ("text", "schema", "answer"),
    [
        ("ship by DHL", {"type": "string"}, "ship by DHL"),
        ("42", {"type": "string"}, "42"),  # a text answer stays text
        ('{"method": "dhl"}', {"type": "object"}, {"method": "dhl"}),
        ("ship by DHL", None, "ship by DHL"),  # no schema: text that is not JSON is text
        ("42", None, 42),
    ],
)
def test_a_text_answer_is_taken_as_text(
    text: str, schema: JsonObject | None, answer: object
) -> None:
    assert response_of(text, schema) == answer


def test_text_where_the_answer_must_be_json_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="--response is not valid JSON"):
        response_of("ship by DHL", {"type": "object"})


# -- the card -----------------------------------------------------------------------------------


def test_the_card_shows_the_changed_argument_first_and_everything_in_full() -> None:
    first = row(interrupt_id="i-1", seq=5, args=PROPOSED, status="edited")
    card = ReviewCard(
        row=row(), request=request(), previous=previous_args(row(), [first, row()]), now=NOW
    )

    text = render_card(card)
    lines = text.splitlines()

    assert lines[0] == "TOOL REQUEST  i-2  (open)"
    assert lines[1] == "CHANGED since the previous proposal:"
    assert lines[2] == '  ! to: changed "ann@example.com" -> "eve@example.com"'
    assert '    "history": [' in text.replace("           ", "")  # context, whole
    assert '    to: "eve@example.com"' in lines
    assert "  who        role:support; not carol, bob  (one level)" in lines
    assert "  deadline   2026-11-23 14:03:04 UTC (in 2h 03m 04s)" in lines
    assert "  then       rejected: the call does not run" in lines
    assert f"  digest     {'d' * 64}" in lines
    assert "  policy     outbound@1 rule always" in lines
    assert card.to_json()["changes_since_previous"] == {
        "changed": {"to": {"from": "ann@example.com", "to": "eve@example.com"}},
        "added": {},
        "removed": {},
    }


def test_nothing_on_a_card_can_drive_the_terminal() -> None:
    hostile = "\x1b]0;pwned\x07\x1b[2J"
    card = ReviewCard(
        row=row(),
        request=request(title=f"t{hostile}", reasoning=hostile, args={hostile: f"a\n{hostile}"}),
        previous=None,
        now=NOW,
    )

    text = render_card(card)

    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\\x1b]0;pwned" in text  # shown, not obeyed


def test_long_text_arguments_read_as_text() -> None:
    letter = "Dear Ann,\n\nyour refund left us today.\n\nBob"
    card = ReviewCard(
        row=row(), request=request(args={**PROPOSED, "body": letter}), previous=None, now=NOW
    )

    lines = render_card(card).splitlines()

    at = lines.index("    body:")
    assert lines[at + 1 : at + 6] == [
        "      | Dear Ann,",
        "      | ",
        "      | your refund left us today.",
        "      | ",
        "      | Bob",
    ]


def test_a_question_card_shows_its_answer_schema_default_and_who_may_answer() -> None:
    question_row = row(
        kind="question", tool=None, args=None, approvers=(), excluded=(), on_timeout="respond"
    )
    question = request(
        kind="question",
        title="How should order A-17 ship?",
        tool=None,
        args=None,
        answer_schema={"type": "string", "default": "standard"},
        allowed=("respond",),
    )
    card = ReviewCard(row=question_row, request=question, previous=None, now=NOW)

    text = render_card(card)

    assert "  who        anyone  (one level)" in text  # bob started the run and may answer
    assert '  then       answered with its default: "standard"' in text
    assert '  answer     {\n               "type": "string",' in text
    assert card.answers_plain_text
    assert "--response '...'" in text


def test_what_a_resume_came_to() -> None:
    def env(payload: RunEventPayload) -> EventEnvelope:
        return EventEnvelope(
            event_id="e",
            run_id="r",
            seq=0,
            occurred_at_us=0,
            agent="a",
            agent_version="1",
            causation_id="",
            correlation_id="r",
            prev_hash="",
            payload=payload,
        )

    resumed = env(RunResumed(resumed_by="o", reason="", command_id="c"))
    parked = env(RunParked(reason="non-determinism", call=0, expected="", actual="", detail="why"))
    raised = env(InterruptRaised(call=1, interrupt_id="i-9", request=request()))

    assert resumed_status([resumed]) == (
        "waiting where it stood",
        "its open requests take decisions again",
    )
    assert resumed_status([resumed, parked]) == ("parked again", "why")
    assert resumed_status([resumed, raised]) == ("waiting", "new request: i-9")


def test_a_parked_runs_explanation_reads_line_by_line() -> None:
    from countersign.render import run_header
    from projections.rows import RunRow

    run = RunRow(
        run_id="r",
        agent="lottery",
        agent_version="1",
        requested_by="alice",
        status="parked",
        started_at=NOW,
        updated_at=NOW,
        finished_at=NOW,
        last_seq=3,
        open_interrupts=0,
        input={},
        output=None,
        error="non-determinism (call 0: …)\nstep 0 does not replay\n  made at: \x1b[31mx",
    )

    lines = run_header(run).splitlines()

    assert lines[-3:] == [
        "error     non-determinism (call 0: …)",
        "          step 0 does not replay",
        "            made at: \\x1b[31mx",
    ]
