"""JSON values as they travel inside events (tool arguments, results, run input and output). Pure.

Avro has no JSON type, so the codec carries these as canonical JSON strings; in Python they
are plain dicts, lists and scalars. Reading is strict (`loads`): bounded size and nesting,
finite numbers, text that can be written again as UTF-8.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import math
import re
from collections.abc import Callable
from typing import TypeAlias

import orjson

from events.limits import MAX_JSON_CHARS, MAX_JSON_DEPTH

Json: TypeAlias = "bool | int | float | str | list[Json] | dict[str, Json] | None"
JsonObject: TypeAlias = "dict[str, Json]"


# Built once: json.dumps/loads with non-default options build a new encoder/decoder per
# call, which was a third of the cost of replaying a run.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


# The C encoder that `_ENCODER.encode` builds afresh on every call, built once. It keeps no
# markers (a cycle ends in RecursionError); on any failure the full encoder says what is wrong.
_MAKE_C_ENCODER: Callable[..., Callable[[object, int], list[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)
_C_ENCODER = (
    None
    if _MAKE_C_ENCODER is None
    else _MAKE_C_ENCODER(
        None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", True, False, False
    )
)


def canonical_json(value: Json) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept as is."""
    if _C_ENCODER is not None:
        try:
            return "".join(_C_ENCODER(value, 0))
        except (RecursionError, ValueError, TypeError):
            pass
    return _ENCODER.encode(value)


def digest(value: Json) -> str:
    """sha256 of the canonical JSON, hex; used to match recorded calls on replay."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


_SORTED_PLAIN = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)


_dumps, _marshal, _sha256 = orjson.dumps, marshal.dumps, hashlib.sha256  # no module lookups
_FLAT = frozenset((str, int, bool, type(None)))


def _refuse(value: object) -> Json:
    raise TypeError


def has_digest(value: Json, expected: str) -> bool:
    """`digest(value) == expected`, raising what `digest` raises, in about half the time
    when it holds (a rebuild asks it of every recorded call).

    It first hashes orjson's text instead of the canonical one. The two differ in places
    (orjson writes 1e-05 as 0.00001, NaN as null, and UUIDs and enum members, which the
    canonical encoder refuses or writes otherwise), so a match counts only when

    - every leaf and container is exactly str, int, float, bool, None, list, tuple or dict
      (no subclass, no enum, no UUID): marshal took the value, or it is a dict of exact
      str, int, bool and None; and orjson took it too (string keys, integers within 64
      bits, no lone surrogate);
    - no NaN or infinity became `null`: the value holds no float, or the text no `null`.

    Such a text parses back to the value itself, and JSON text determines a value (1, 1.0
    and true are spelled apart; floats are written shortest round-trip), so when it equals
    the text `expected` hashes, which the engine made by `digest` (the canonical text of
    some value), that value is this one and the canonical text of this one is that text
    too. Anything else (a mismatch, a refusal) goes to `digest` itself: the answer, and
    whatever it raises, are the same for every value."""
    try:
        text = _dumps(value, option=_SORTED_PLAIN, default=_refuse)
        # Most calls pass a dict of exact strings, integers, booleans and None: no float, and
        # nothing marshal refuses, so both checks below hold; this loop costs less.
        plain = False
        if type(value) is dict:
            plain = True
            for item in value.values():
                if type(item) not in _FLAT:
                    plain = False
                    break
        # marshal's version 2 writes no back-references: a type check (its bytes are never
        # empty); it raises ValueError for what it refuses.
        checked = plain or (text.find(b"null") < 0 and bool(_marshal(value, 2)))
        if checked and _sha256(text).hexdigest() == expected:
            return True
    except (TypeError, ValueError):  # orjson's refusals are TypeErrors, marshal's ValueErrors
        pass
    return digest(value) == expected


class JsonRefused(ValueError):
    """Text that is not JSON, or JSON that breaks a limit; the message says which."""


def _refuse_constant(name: str) -> Json:
    raise JsonRefused(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf: it could never be written back
        raise JsonRefused(f"number {text[:40]} is out of range")
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite)
# A string token (so brackets inside strings are not counted), or a bracket.
_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# orjson reads integers past 64 bits as floats; Python keeps them exact. Text with a long run
# of digits (a big integer, or a string that holds one) is left to the standard parser.
_LONG_DIGITS = re.compile(r"[0-9]{19}")


def check_depth(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse nesting deeper than `limit`, by scanning the text: no recursion, so a few
    thousand `[` give a refusal, never a RecursionError."""
    if text.count("[") + text.count("{") <= limit:
        return
    depth = 0
    for token in _STRUCTURE.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > limit:
                raise JsonRefused(f"nested deeper than {limit} levels")
        elif bracket in ("]", "}"):
            depth -= 1


def check_limits(text: str, *, max_chars: int = MAX_JSON_CHARS) -> None:
    """The size and depth limits `loads` applies before parsing."""
    if len(text) > max_chars:
        raise JsonRefused(f"{len(text)} characters is over the {max_chars}-character limit")
    check_depth(text)


def loads(text: str, *, max_chars: int = MAX_JSON_CHARS) -> Json:
    """Strict JSON: at most `max_chars` characters and MAX_JSON_DEPTH levels; NaN, Infinity
    and numbers that overflow a double are refused (PostgreSQL's jsonb refuses them too), and
    so is an escaped lone surrogate ("\\ud800"), which Python reads but cannot write as UTF-8.
    Raises `JsonRefused` (a ValueError) saying why."""
    # `check_limits` inline, and no search for 19 digits in shorter text: most JSON fields
    # are short, and these calls cost more than orjson's parse of them.
    if len(text) > max_chars or text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        check_limits(text, max_chars=max_chars)
    if len(text) < 19 or _LONG_DIGITS.search(text) is None:
        try:  # a tenth of the cost; it refuses NaN, Infinity, overflow and lone surrogates
            fast: Json = orjson.loads(text)
            return fast
        except orjson.JSONDecodeError:
            pass  # the standard parser below says why, in its words
    try:
        value: Json = _DECODER.decode(text)
    except JsonRefused:
        raise
    except ValueError as exc:  # JSONDecodeError, and ints over Python's 4,300-digit limit
        raise JsonRefused(str(exc)) from exc
    if _SURROGATE_ESCAPE.search(text):
        try:
            canonical_json(value).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise JsonRefused("a string holds a lone UTF-16 surrogate") from exc
    return value
