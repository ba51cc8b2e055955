"""`has_digest(a, digest(b))` answers, and raises, exactly as `digest(a) == digest(b)` does:
on JSON values and on the values orjson and the canonical encoder write apart (floats near
the exponent thresholds, NaN, big integers, lone surrogates, enum members, UUIDs,
subclasses), with `a` drawn alone and as a twin of `b` that differs in a leaf's type only."""

from __future__ import annotations

import contextlib
import enum
import math
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.json import canonical_json, digest, has_digest


class _Str(str):
    pass


class _Int(int):
    pass


class _Float(float):
    pass


class _Dict(dict[str, Any]):
    pass


class _Color(enum.Enum):
    RED = 1
    BLUE = "blue"


class _Level(enum.IntEnum):
    ONE = 1


class _Kind(enum.StrEnum):
    A = "a"


class _Odd(enum.StrEnum):
    """Its text is "content", its value "val": orjson writes the value, the encoder the text."""

    A = "val"

    def __new__(cls, value: str) -> _Odd:
        member = str.__new__(cls, "content")
        member._value_ = value
        return member


def _outcome(call: Any) -> object:
    try:
        return call()
    except Exception as exc:  # the type is the verdict: raising is an answer too
        return type(exc)


def _same_verdict(a: Any, b: Any) -> None:
    try:
        expected = digest(b)
    except Exception:
        expected = "0" * 64  # b has no digest: any a may still be asked about some digest
    fast = _outcome(lambda: has_digest(a, expected))
    exact = _outcome(lambda: digest(a) == expected)
    assert fast == exact, (a, b)


TRICKY_FLOATS = st.sampled_from(
    [1e-4, 1e-5, 1.5e-5, 1e-6, 1.5e-7, 1e-7, 9.99e-5, 1e15, 1e16, 1.5e16, 1e17, 2.0**53,
     2.0**64, 1e300, 5e-324, -0.0, 0.0, 1.0, -1e-5, math.nan, math.inf, -math.inf]
)  # fmt: skip
FLOATS = st.floats() | TRICKY_FLOATS | st.floats(1e-8, 1e-4) | st.floats(1e15, 1e18)
INTS = st.integers() | st.sampled_from(
    [2**53, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70, -(2**63), -(2**63) - 1, -(2**64)]
)
TEXT = st.text(max_size=8) | st.sampled_from(
    ["\ud800", "a\udfffb", "é", "\u2028", "\x00\x1f\x7f", '"\\', "null", "0.00001", "1e-05"]
)
LEAVES = st.none() | st.booleans() | INTS | FLOATS | TEXT
JSON = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)


def _twin(value: Any, choice: int) -> Any:
    """The same JSON text under the canonical encoder, or one leaf's type changed."""
    if value is None:
        return [None, math.nan, -math.inf][choice % 3]  # orjson writes both as null
    if isinstance(value, bool):
        return [value, int(value), _Str(str(value).lower()), float(value)][choice % 4]
    if isinstance(value, int):
        options: list[Any] = [value, float(value) if abs(value) < 2**60 else value, _Int(value)]
        if value == 1:
            options += [_Level.ONE, _Color.RED, True]
        return options[choice % len(options)]
    if isinstance(value, float):
        if math.isfinite(value):
            return [value, _Float(value), repr(value), int(value)][choice % 4]
        return [value, None, float("nan")][choice % 3]
    if isinstance(value, str):
        options = [value, _Str(value)]
        if value == "a":
            options.append(_Kind.A)
        if value in ("val", "content"):
            options.append(_Odd.A)
        if value == "blue":
            options.append(_Color.BLUE)
        with contextlib.suppress(ValueError):
            options.append(uuid.UUID(value))
        return options[choice % len(options)]
    if isinstance(value, list | tuple):
        items = [_twin(item, choice + i) for i, item in enumerate(value)]
        return [items, tuple(items)][choice % 2]
    if isinstance(value, dict):
        twin = {key: _twin(item, choice + i) for i, (key, item) in enumerate(value.items())}
        return [twin, _Dict(twin)][choice % 2]
    return value


@settings(max_examples=3000)
@given(a=JSON, b=JSON)
def test_any_two_values(a: Any, b: Any) -> None:
    _same_verdict(a, b)
    _same_verdict(a, a)


@settings(max_examples=3000)
@given(b=JSON, choice=st.integers(0, 11))
def test_a_value_and_its_twins(b: Any, choice: int) -> None:
    _same_verdict(_twin(b, choice), b)
    _same_verdict({"args": _twin(b, choice)}, {"args": b})


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"x": uuid.UUID(int=1)}, {"x": str(uuid.UUID(int=1))}),
        ({"x": _Color.RED}, {"x": 1}),
        ({"x": _Color.BLUE}, {"x": "blue"}),
        ({"x": _Level.ONE}, {"x": 1}),
        ({"x": _Kind.A}, {"x": "a"}),
        ({"x": _Odd.A}, {"x": "val"}),
        ({"x": _Odd.A}, {"x": "content"}),
        ({"x": _Str("s")}, {"x": "s"}),
        ({_Str("k"): 1}, {"k": 1}),
        ({1: "a"}, {"1": "a"}),
        ({"x": 1}, {"x": 1.0}),
        ({"x": 1}, {"x": True}),
        ({"x": 1.0}, {"x": 1}),
        ({"x": True}, {"x": 1}),
        ({"x": 1e-5}, {"x": 1e-5}),
        ({"x": 1.5e-7}, {"x": 1.5e-7}),
        ({"x": 1e16}, {"x": 1e16}),
        ({"x": -0.0}, {"x": 0.0}),
        ({"x": math.nan}, {"x": None}),
        ({"x": math.inf}, {"x": None}),
        ({"x": 2**64}, {"x": 2**64}),
        ({"x": "\ud800"}, {"x": "\ud800"}),
        ({"x": orjson.Fragment(b"1")}, {"x": 1}),
        ({"amount": 900, "vendor": "acme"}, {"vendor": "acme", "amount": 900}),
        ({"amount": 900, "vendor": "acme"}, {"vendor": "acme", "amount": 901}),  # edited
        ({"email": "a@b.c"}, {"email": {"$sealed": "x"}}),  # erased
        ({"x": [1, (2, 3)]}, {"x": [1, [2, 3]]}),
    ],
)
def test_values_the_encoders_write_apart(a: Any, b: Any) -> None:
    _same_verdict(a, b)
    _same_verdict(a, a)


def test_the_usual_call_takes_the_short_way(monkeypatch: pytest.MonkeyPatch) -> None:
    import events.json as module

    args = {"i": 7, "name": "é", "amount": 12.5, "items": [1, 2]}
    recorded = digest(dict(reversed(args.items())))
    monkeypatch.setattr(module, "digest", lambda value: pytest.fail("took the long way"))
    assert has_digest(args, recorded)


def test_orjson_and_the_encoder_disagree_where_the_short_way_must_not_trust_them() -> None:
    """Why the checks are there: were these to agree one day, the tests above still hold."""
    assert orjson.dumps(1e-5) != canonical_json(1e-5).encode()
    assert orjson.dumps(math.nan) == b"null"
    as_the_short_way = orjson.OPT_PASSTHROUGH_SUBCLASS
    assert orjson.dumps(_Odd.A, option=as_the_short_way) != canonical_json(_Odd.A).encode()
    assert orjson.dumps(uuid.UUID(int=1)) == orjson.dumps(str(uuid.UUID(int=1)))
