"""`ToolResult._ran`, which a rebuild uses for every recorded call, makes the same object as
`ToolResult(status="ok", value=..., args=...)`; `ToolCall` takes its fields by position
(how `RunContext` makes it) and by keyword alike."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from engine.agent.context import ToolCall, ToolResult


def test_a_ran_result_is_the_keyword_made_one() -> None:
    made = ToolResult._ran({"i": 1}, {"a": [1]})
    called = ToolResult(status="ok", value={"i": 1}, args={"a": [1]})
    assert type(made) is ToolResult
    assert made == called
    assert repr(made) == repr(called)
    assert made.__dict__ == called.__dict__
    assert list(made.__dict__) == list(called.__dict__)  # the same field order
    assert made.ok
    assert made.unwrap() == {"i": 1}
    with pytest.raises(TypeError):  # unhashable, as a result with a dict of arguments is
        hash(made)
    assert dataclasses.replace(made, reason="r") == dataclasses.replace(called, reason="r")
    assert pickle.loads(pickle.dumps(made)) == called
    assert copy.copy(made) == called
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.status = "failed"  # type: ignore[misc]


class _Resolver:
    def __init__(self) -> None:
        self.made = 0

    def next_position(self) -> int:
        self.made += 1
        return self.made - 1


def test_a_tool_call_by_position_and_by_keyword() -> None:
    resolver = _Resolver()
    by_position = ToolCall(resolver, "t", {"a": 1}, "why", "what", {"c": 1}, 0.5)  # type: ignore[arg-type]
    by_keyword = ToolCall(
        resolver,  # type: ignore[arg-type]
        "t",
        {"a": 1},
        reasoning="why",
        impact="what",
        context={"c": 1},
        confidence=0.5,
    )
    fields = ("tool", "args", "reasoning", "impact", "context", "confidence")
    assert [getattr(by_position, f) for f in fields] == [getattr(by_keyword, f) for f in fields]
    assert (by_position.position, by_keyword.position) == (0, 1)
