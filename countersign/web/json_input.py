"""JSON sent by people, parsed with bounds. Pure.

    value = parse_json(body)   # ValueError: a sentence the caller can show

Python's parser accepts what JSON does not (`NaN`, `Infinity`), and nesting deep enough to
exhaust the stack; our checks of arguments and answers recurse. So both are refused here.
"""

from __future__ import annotations

import json

from events.json import Json

MAX_DEPTH = 32


def parse_json(text: str | bytes) -> Json:
    """`text` as JSON; `ValueError` when it is not JSON, holds NaN or ±Infinity, or nests
    deeper than `MAX_DEPTH` levels."""
    try:
        value: Json = json.loads(text, parse_constant=_no_constant)
    except RecursionError as exc:
        raise ValueError(f"it nests deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:
        raise ValueError(f"it is not JSON: {str(exc)[:200]}") from exc
    if depth(value) > MAX_DEPTH:
        raise ValueError(f"it nests deeper than {MAX_DEPTH} levels")
    return value


def depth(value: Json) -> int:
    """How deep `value` nests: a scalar 0, `[]` 1, `[[1]]` 2 (without recursing)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend(
                (v, level + 1) for v in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def _no_constant(name: str) -> Json:
    raise ValueError(f"{name} is not a JSON number")
