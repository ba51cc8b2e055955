"""Argument schemas derived from tool signatures, and the small JSON-schema check behind edits
and typed answers; plus the principal/role rules of who may decide."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.agent.app import App
from engine.agent.argspec import schema_of_function, validate
from engine.agent.authorization import Level, is_listed, levels_from_json, refusal_for_principal
from engine.errors import ConfigurationError
from events.json import Json


async def _transfer(
    account: str,
    amount: float,
    idempotency_key: str,
    memo: str | None = None,
    urgent: bool = False,
    tags: list[str] | None = None,
    channel: Literal["sepa", "swift"] = "sepa",
    extra: Any = None,
) -> Json:
    return None


def test_the_schema_comes_from_the_signature() -> None:
    schema = schema_of_function(_transfer)

    assert schema == {
        "type": "object",
        "properties": {
            "account": {"type": "string"},
            "amount": {"type": ["number", "integer"]},
            "memo": {"type": ["string", "null"]},
            "urgent": {"type": "boolean"},
            "tags": {"type": ["array", "null"]},
            "channel": {"enum": ["sepa", "swift"]},
            "extra": {},
        },
        "required": ["account", "amount"],
        "additionalProperties": False,
    }


def test_a_tool_with_kwargs_accepts_unknown_arguments() -> None:
    async def open_ended(a: int, **rest: Any) -> Json:
        return None

    schema = schema_of_function(open_ended)

    assert "additionalProperties" not in schema
    assert validate({"a": 1, "b": 2}, schema) == []


def test_a_tool_may_declare_its_own_schema() -> None:
    app = App("t")
    declared: dict[str, Json] = {"type": "object", "required": ["x"]}

    @app.tool(args_schema=declared)
    async def anything(**kwargs: Any) -> Json:
        return None

    tool = app.get_tool("anything")
    assert tool is not None
    assert tool.args_schema == declared


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ({"account": "a", "amount": 1}, []),
        ({"account": "a", "amount": 1.5, "memo": None, "channel": "swift"}, []),
        ({"amount": 1}, ["account is required"]),
        (
            {"account": "a", "amount": 1, "channel": "cash"},
            ["channel must be one of ['sepa', 'swift']"],
        ),
        ({"account": "a", "amount": 1, "urgent": "yes"}, ["urgent must be boolean, not string"]),
        ({"account": "a", "amount": 1, "tags": "x"}, ["tags must be array or null, not string"]),
        ({"account": "a", "amount": 1, "nope": 1}, ["nope is not an accepted argument"]),
        ([], ["the value must be object, not array"]),
    ],
)
def test_validation_reports_each_problem(value: Json, errors: list[str]) -> None:
    assert validate(value, schema_of_function(_transfer)) == errors


def test_nested_items_and_bounds() -> None:
    schema: Json = {
        "type": "array",
        "items": {"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}},
    }

    assert validate([{"n": 1}, {"n": 4}], schema) == ["the value[1].n must be at most 3"]
    assert validate("ab", {"type": "string", "maxLength": 1}) == [
        "the value must have at most 1 characters"
    ]
    assert validate(None, None) == []  # no schema: anything goes


@given(
    st.fixed_dictionaries(
        {
            "account": st.text(),
            "amount": st.floats(allow_nan=False, allow_infinity=False) | st.integers(),
        },
        optional={
            "memo": st.none() | st.text(),
            "urgent": st.booleans(),
            "channel": st.sampled_from(["sepa", "swift"]),
        },
    )
)
def test_any_call_the_signature_accepts_passes_its_schema(args: dict[str, Json]) -> None:
    assert validate(args, schema_of_function(_transfer)) == []


# -- who may decide -------------------------------------------------------------------------------

DIRECTORY = {"bob": ["ops", "lead"], "carol": ["ops"]}


@pytest.mark.parametrize(
    ("principal", "approvers", "listed"),
    [
        ("bob", ("role:lead",), True),
        ("carol", ("role:lead",), False),
        ("carol", ("role:lead", "carol"), True),
        ("zed", (), True),
        ("zed", ("role:ops",), False),
        ("lead", ("role:lead",), False),  # a principal named like a role is not the role
    ],
)
def test_approvers_are_principals_or_roles(
    principal: str, approvers: tuple[str, ...], listed: bool
) -> None:
    assert is_listed(principal, approvers, DIRECTORY) is listed


def test_refusals_name_the_rule() -> None:
    def why(principal: str, **kw: Any) -> str:
        args: dict[str, Any] = {
            "approvers": ("role:ops",),
            "excluded": (),
            "requester": "alice",
            "separation_of_duties": True,
            "directory": DIRECTORY,
        }
        args.update(kw)
        return refusal_for_principal(principal, **args)

    assert why("carol") == ""
    assert why("alice", approvers=()) == "alice started this run and may not approve its requests"
    assert why("alice", approvers=(), separation_of_duties=False) == ""
    assert why("carol", excluded=("carol",)).startswith("carol already approved an earlier level")
    assert why("dan") == "dan is not among the approvers of this request (role:ops)"


def test_levels_round_trip_through_json_and_refuse_impossible_quorums() -> None:
    levels = (Level(("role:ops",), quorum=2), Level(("erin",)))

    assert levels_from_json([level.to_json() for level in levels]) == levels
    assert levels_from_json(None) == (Level(),)
    with pytest.raises(ConfigurationError, match="can never be met"):
        Level(("bob", "carol"), quorum=3)
    with pytest.raises(ConfigurationError):
        Level(quorum=0)
