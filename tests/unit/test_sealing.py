"""Sealed personal values: they open only with their subject's key, for the run and path
they were sealed for; erased or forged ones read as such, never as someone's data; a
tool's marks say which values are personal and whose."""

from __future__ import annotations

import copy
import os
from typing import Annotated, Any, TypedDict

import pytest

from engine import DATA_SUBJECT, PERSONAL, App
from engine.errors import ConfigurationError
from engine.privacy.events import open_history, seal_payload, subjects_in
from engine.privacy.sealing import (
    ERASED,
    SEALED,
    UNREADABLE,
    open_sealed,
    seal,
    sealed_of,
    withheld_in,
)
from events.envelope import EventEnvelope
from events.json import Json
from events.run_events import ToolCallCompleted, ToolCallScheduled

KEY = os.urandom(32)
NONCE = bytes(12)


def sealed(
    value: Json, *, subject: str = "cust-1", run: str = "r1", path: str = "args.email"
) -> Json:
    return seal(KEY, NONCE, subject=subject, run_id=run, path=path, value=value)


def test_a_sealed_value_opens_with_its_key_run_and_path() -> None:
    box = sealed({"street": "Elm 1", "n": [1, 2]})
    found = sealed_of(box)

    assert found is not None
    assert open_sealed(found, KEY, "r1") == {"street": "Elm 1", "n": [1, 2]}
    assert "Elm" not in str(box)


@pytest.mark.parametrize(
    ("change", "run"),
    [
        (lambda b: b[SEALED].update(subject="cust-2"), "r1"),  # moved to another subject
        (lambda b: b[SEALED].update(path="args.name"), "r1"),  # moved to another field
        (lambda b: None, "r2"),  # copied into another run
        (lambda b: b[SEALED].update(data=b[SEALED]["data"][:-4] + "AAAA"), "r1"),  # bit-flipped
    ],
)
def test_a_moved_or_changed_sealed_value_does_not_open(change: Any, run: str) -> None:
    box = copy.deepcopy(sealed("ada@example.org"))
    change(box)
    found = sealed_of(box)

    assert found is not None
    assert set(open_sealed(found, KEY, run)) == {UNREADABLE}  # type: ignore[arg-type]


def test_without_its_key_a_value_reads_as_erased() -> None:
    found = sealed_of(sealed("ada@example.org"))
    assert found is not None
    assert open_sealed(found, None, "r1") == {ERASED: "cust-1"}
    assert withheld_in({"to": {ERASED: "cust-1"}}) == "cust-1"
    assert withheld_in({"to": "ada@example.org"}) is None


@pytest.mark.parametrize(
    "value",
    [
        {SEALED: "x"},
        {SEALED: {"subject": "s", "path": "p"}},
        {SEALED: {"subject": "", "path": "p", "data": "AAAAAAAAAAAAAAAAAAAAAA=="}},
        {SEALED: {"subject": "s" * 300, "path": "p", "data": "AAAAAAAAAAAAAAAAAAAAAA=="}},
        {SEALED: {"subject": "s", "path": "p", "data": "not base64!"}},
        {SEALED: {"subject": "s", "path": "p", "data": "AAAA"}},  # shorter than a nonce
        {SEALED: {"subject": "s", "path": "p", "data": "AAAA"}, "more": 1},
    ],
)
def test_a_malformed_sealed_value_is_not_one(value: Json) -> None:
    assert sealed_of(value) is None
    assert subjects_in([ToolCallCompleted(call=0, result=value)]) == set()


app = App()


class Customer(TypedDict):
    name: Annotated[str, PERSONAL]
    tier: str


@app.tool()
async def lookup(
    customer_id: Annotated[str, DATA_SUBJECT], email: Annotated[str, PERSONAL]
) -> Customer:
    return {"name": "Ada", "tier": "gold"}


def fields(tool: str):  # type: ignore[no-untyped-def]
    spec = app.get_tool(tool)
    return spec.personal if spec else None


def envelope(seq: int, payload: Any) -> EventEnvelope:
    return EventEnvelope(
        event_id=f"e{seq}", run_id="r1", seq=seq, occurred_at_us=1, agent="a",
        agent_version="1", causation_id="c", correlation_id="c", prev_hash="h", payload=payload,
    )  # fmt: skip


def test_a_tools_personal_values_are_sealed_and_opened_again_or_erased() -> None:
    args: dict[str, Json] = {"customer_id": "cust-1", "email": "ada@example.org"}
    schedule = ToolCallScheduled(
        call=0, tool="lookup", args=args, args_digest="d", idempotency_key="k", idempotent=False
    )
    done = ToolCallCompleted(call=0, result={"name": "Ada", "tier": "gold"})

    def box(subject: str, path: str, value: Json) -> Json:
        return seal(KEY, os.urandom(12), subject=subject, run_id="r1", path=path, value=value)

    history = [envelope(0, schedule)]
    sealed_schedule = seal_payload(schedule, [], fields, box)
    sealed_done = seal_payload(done, history, fields, box)
    assert isinstance(sealed_schedule, ToolCallScheduled)
    assert isinstance(sealed_done, ToolCallCompleted)
    assert sealed_schedule.args["customer_id"] == "cust-1"  # the subject stays in clear
    assert "ada@" not in str(sealed_schedule) + str(sealed_done)
    log = [envelope(0, sealed_schedule), envelope(1, sealed_done)]

    opened = open_history(log, lambda s: KEY)
    erased = open_history(log, lambda s: None)

    assert [e.payload for e in opened] == [schedule, done]
    erased_schedule, erased_done = (e.payload for e in erased)
    assert isinstance(erased_schedule, ToolCallScheduled)
    assert erased_schedule.args == {"customer_id": "cust-1", "email": {ERASED: "cust-1"}}
    assert erased_schedule.args_digest == ""  # matched by tool name on replay
    assert erased_done == ToolCallCompleted(
        call=0, result={"name": {ERASED: "cust-1"}, "tier": "gold"}
    )


def test_personal_data_needs_exactly_one_subject() -> None:
    bad = App()
    with pytest.raises(ConfigurationError, match="exactly one"):

        @bad.tool()
        async def mail(email: Annotated[str, PERSONAL]) -> Json:
            return None

    with pytest.raises(ConfigurationError, match="cannot be personal"):

        @bad.tool()
        async def both(who: Annotated[str, DATA_SUBJECT, PERSONAL]) -> Json:
            return None


def test_a_mark_that_cannot_be_read_is_refused_not_lost() -> None:
    code = (
        "from __future__ import annotations\n"
        "from engine import App\n"
        "app = App()\n"
        "@app.tool()\n"
        "async def mail(customer_id: Annotated[str, DATA_SUBJECT], email: str) -> None: ...\n"
    )  # `Annotated` and the mark are not importable where the annotation is read
    with pytest.raises(ConfigurationError, match="cannot be resolved"):
        exec(compile(code, "tool.py", "exec", dont_inherit=True), {})
