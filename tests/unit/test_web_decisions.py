"""Decisions as a person sends them, checked before anything is published; forms from schemas."""

from __future__ import annotations

import pytest

from countersign.web.decisions import (
    DecisionInvalid,
    check_idempotency_key,
    decision_id_for,
    read_decision,
)
from countersign.web.forms import fields_for, read_fields
from events.approval import ApprovalRequest

SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "amount": {"type": ["number", "integer"], "minimum": 1},
        "express": {"type": "boolean"},
        "carrier": {"enum": ["dhl", "ups"]},
        "tags": {"type": "array"},
    },
    "required": ["order_id", "amount"],
    "additionalProperties": False,
}
REQUEST = ApprovalRequest(
    kind="tool", title="refund", tool="refund", args={"order_id": "A-1", "amount": 900},
    args_schema=SCHEMA, allowed=("approve", "edit", "reject"),
)  # fmt: skip
QUESTION = ApprovalRequest(
    kind="question", title="which carrier?", allowed=("respond",),
    answer_schema={"type": "object", "properties": {"carrier": {"enum": ["dhl", "ups"]}},
                   "required": ["carrier"]},
)  # fmt: skip


def refused(body: object, request: ApprovalRequest = REQUEST) -> list[str]:
    with pytest.raises(DecisionInvalid) as caught:
        read_decision(body, request=request, allowed=request.allowed)  # type: ignore[arg-type]
    return caught.value.errors


def test_who_decides_is_never_taken_from_the_body() -> None:
    assert "decided_by is not yours" in refused({"kind": "approve", "decided_by": "alice"})[0]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"kind": "edit", "args": {"order_id": "A-1", "amount": "9"}}, "amount must be"),
        ({"kind": "edit", "args": {"order_id": "A-1", "amount": 0}}, "at least 1"),
        ({"kind": "edit", "args": {"order_id": "A-1", "amount": 9, "x": 1}}, "x is not"),
        ({"kind": "edit", "args": {"amount": 9}}, "order_id is required"),
        ({"kind": "edit", "args": {"order_id": "A-1", "amount": 900}}, "changes nothing"),
        ({"kind": "edit", "args": "all of it"}, "as an object"),
        ({"kind": "reject", "reason": "  "}, "needs a reason"),
        ({"kind": "approve", "reason": "x" * 2001}, "at most 2000"),
        ({"kind": "approve", "args": {}}, "args belong to an edit"),
        ({"kind": "respond", "response": 1}, "does not allow respond"),
        ({"kind": "approve", "extra": 1}, "unknown fields"),
        ({"kind": 3}, "kind must be one of"),
        ("approve", "a JSON object"),
    ],
)
def test_what_cannot_be_sent_says_why(body: object, expected: str) -> None:
    assert any(expected in e for e in refused(body)), refused(body)


def test_a_valid_edit_and_a_valid_answer_pass() -> None:
    edit = read_decision({"kind": "edit", "args": {"order_id": "A-1", "amount": 500}},
                         request=REQUEST, allowed=REQUEST.allowed)  # fmt: skip
    assert edit.args == {"order_id": "A-1", "amount": 500}
    answer = read_decision({"kind": "respond", "response": {"carrier": "ups"}},
                           request=QUESTION, allowed=QUESTION.allowed)  # fmt: skip
    assert answer.response == {"carrier": "ups"}
    assert (
        "carrier must be one of"
        in refused({"kind": "respond", "response": {"carrier": "post"}}, QUESTION)[0]
    )


def test_the_decision_id_is_the_same_for_a_retry_and_differs_for_anyone_else() -> None:
    one = decision_id_for("alice", "i-1", "k")
    assert one == decision_id_for("alice", "i-1", "k")
    assert len({one, decision_id_for("erin", "i-1", "k"), decision_id_for("alice", "i-2", "k"),
                decision_id_for("alice", "i-1", "k2")}) == 4  # fmt: skip


@pytest.mark.parametrize("key", [None, "", "x" * 201, "line\nbreak"])
def test_idempotency_keys_are_required_and_bounded(key: str | None) -> None:
    with pytest.raises(DecisionInvalid):
        check_idempotency_key(key)


def test_forms_are_made_from_the_schema_and_read_back_typed() -> None:
    fields = {f.label: f for f in fields_for(SCHEMA, REQUEST.args, prefix="arg.")}
    assert fields["order_id"].kind == "text"
    assert fields["order_id"].value == "A-1"
    assert fields["amount"].kind == "number"
    assert fields["amount"].minimum == 1
    assert fields["express"].kind == "checkbox"
    assert fields["carrier"].options == ("dhl", "ups")
    assert fields["tags"].kind == "json"
    form = {"arg.order_id": "A-1", "arg.amount": "12.5", "arg.carrier": "dhl",
            "arg.tags": '["a"]', "csrf": "ignored"}  # fmt: skip
    value, errors = read_fields(SCHEMA, form, prefix="arg.")
    assert errors == []
    assert value == {"order_id": "A-1", "amount": 12.5, "express": False, "carrier": "dhl",
                     "tags": ["a"]}  # fmt: skip
    _, bad = read_fields(SCHEMA, {"arg.amount": "lots", "arg.tags": "["}, prefix="arg.")
    assert len(bad) == 2


def test_an_answer_that_is_one_string_is_one_text_box() -> None:
    fields = fields_for({"type": "string", "maxLength": 50}, None, prefix="answer.")
    assert [(f.name, f.kind, f.max_length) for f in fields] == [("answer.", "text", 50)]
    value, errors = read_fields({"type": "string"}, {"answer.": "ship it"}, prefix="answer.")
    assert (value, errors) == ("ship it", [])
