"""Rows to PostgreSQL values and back, derived from a row dataclass and a column map. Pure.

A `Table` names a table (or view) and the kind of each column; its columns are exactly the
fields of its row dataclass (checked when it is built), so the INSERT column list, the
`unnest` arrays, the parameters and the mapping of fetched records back into rows all come
from one declaration (`store_tables.py`). `select` is the one builder of the read queries.

Values going in: PostgreSQL refuses NUL characters in text and `\\u0000` in jsonb, and JSON
has no NaN, so `Text` and `Jsonb` columns replace them (NUL by U+FFFD, non-finite numbers by
null): one odd string in a tool result cannot keep a run's row from moving on. The exact
bytes stay in `cs_events.raw`. `Plain` columns pass values through untouched (identifiers
holding NUL are refused by the server, and the projector records that event as an error).

Values coming out are checked where a row type promises more than the column type does: a
`Choice` column holds one of its values, a `Jsonb` column the JSON shape of its field. A row
that breaks that was written by someone other than the projector: `CorruptRow`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import orjson

from events.json import Json
from projections.errors import CorruptRow

R = TypeVar("R")
Params = tuple[list[Any], ...]
Writer = Callable[[Any], Any]
Condition = tuple[str, *tuple[object, ...]]
"""A WHERE clause with `{0}`, `{1}`... for its values; left out when its first value is None."""

_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def text(value: str) -> str:
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def jsonb(value: Json) -> str | None:
    """JSON text for a jsonb parameter; Python None is SQL NULL.

    orjson first (several times faster than the standard encoder; it writes NaN and infinity
    as null, as cleaning does, and numbers with the same decimal value). What it refuses
    (integers past 64 bits, lone surrogates, nesting past its limit) and text holding NUL go
    the standard way, which cleans or refuses as before."""
    if value is None:
        return None
    try:
        fast = orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        pass
    else:
        if b"\\u0000" not in fast:
            return fast.decode()
    try:
        dumped = _ENCODER.encode(value)
    except ValueError:  # NaN or infinity somewhere
        return _ENCODER.encode(_clean(value))
    if "\\u0000" in dumped:
        return _ENCODER.encode(_clean(value))
    return dumped


def _text_or_null(value: str | None) -> str | None:
    return value if value is None or "\x00" not in value else text(value)


def _jsonb_array(values: tuple[str, ...]) -> str | None:
    return jsonb(list(values))


def _clean(value: Json) -> Json:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {text(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


# -- column kinds -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plain:
    """Passed through both ways (numbers, times, booleans, identifiers)."""

    sql: str
    writer = None

    def out(self, value: Any, where: str) -> Any:
        return value


@dataclass(frozen=True, slots=True)
class Text:
    """Text a person or an agent wrote: NUL cleaned going in; `null_as` for SQL NULL out."""

    null_as: str | None = None
    sql = "text"

    @property
    def writer(self) -> Callable[[str | None], str | None]:
        return _text_or_null

    def out(self, value: Any, where: str) -> Any:
        return self.null_as if value is None else value


@dataclass(frozen=True, slots=True)
class Choice:
    """Text that is one of `values` (a status, an action): anything else is refused."""

    values: tuple[str, ...]
    sql = "text"
    writer = None

    def out(self, value: Any, where: str) -> Any:
        if value not in self.values:
            raise CorruptRow(f"{where} holds {_shown(value)}, not one of {', '.join(self.values)}")
        return value


@dataclass(frozen=True, slots=True)
class Jsonb:
    """JSON: `any` value, an `object` (or null) or `strings` (a tuple of text, a JSON array)."""

    shape: Literal["any", "object", "strings"] = "any"
    sql = "jsonb"

    @property
    def writer(self) -> Callable[[Any], str | None]:
        return _jsonb_array if self.shape == "strings" else jsonb

    def out(self, value: Any, where: str) -> Any:
        loaded = None if value is None else json.loads(value)
        if self.shape == "strings":
            if not isinstance(loaded, list) or not all(isinstance(v, str) for v in loaded):
                raise CorruptRow(f"{where} holds {_shown(value)}, not a JSON array of strings")
            return tuple(loaded)
        if self.shape == "object" and not (loaded is None or isinstance(loaded, dict)):
            raise CorruptRow(f"{where} holds {_shown(value)}, not a JSON object")
        return loaded


@dataclass(frozen=True, slots=True)
class Bytea:
    sql = "bytea"
    writer = None

    def out(self, value: Any, where: str) -> Any:
        return bytes(value)


Column = Plain | Text | Choice | Jsonb | Bytea


def _shown(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else f"{shown[:77]}..."


# -- tables -------------------------------------------------------------------------------------


class Table(Generic[R]):
    """A table or view whose rows are `row` dataclasses; `columns` maps each field, in the
    table's column order, to its kind. `generated` columns are filled by the database: read,
    never written."""

    def __init__(
        self,
        name: str,
        row: Callable[..., R],
        columns: Mapping[str, Column],
        *,
        generated: Iterable[str] = (),
    ) -> None:
        fields = [f.name for f in dataclasses.fields(row)]  # type: ignore[arg-type]
        if set(fields) != set(columns):
            missing, extra = set(fields) - set(columns), set(columns) - set(fields)
            raise TypeError(f"{name}: fields without a column {missing}, columns without {extra}")
        self.name = name
        self.row = row
        self.columns = dict(columns)
        self.generated = frozenset(generated)
        self.written = tuple(c for c in columns if c not in self.generated)
        self._record = _record_maker(name, [(c, self.columns[c].writer) for c in self.written])

    def column_list(self, *, written: bool = False) -> str:
        """The columns for a SELECT (all) or an INSERT (`written`), quoted."""
        return ", ".join(f'"{c}"' for c in (self.written if written else self.columns))

    def record(self, row: R) -> tuple[Any, ...]:
        """The written columns' values of `row`, as PostgreSQL takes them."""
        return self._record(row)

    def records(self, rows: Iterable[R]) -> list[tuple[Any, ...]]:
        return list(map(self._record, rows))

    def params(self, rows: Sequence[R]) -> Params | None:
        """Column-wise parameters for `select_unnest` (None when there are no rows)."""
        return columns_of(self.records(rows))

    def select_unnest(self) -> str:
        """`SELECT c1, c2::jsonb, ... FROM unnest($1::text[], $2::text[], ...) AS u(c1, ...)`:
        one row per array index; jsonb travels as text and is cast on the server."""
        selects, arrays = [], []
        for index, name in enumerate(self.written, start=1):
            sql = self.columns[name].sql
            arrays.append(f"${index}::{'text' if sql == 'jsonb' else sql}[]")
            selects.append(f"c{index}::jsonb" if sql == "jsonb" else f"c{index}")
        aliases = ", ".join(f"c{i}" for i in range(1, len(arrays) + 1))
        return f"SELECT {', '.join(selects)} FROM unnest({', '.join(arrays)}) AS u({aliases})"

    def from_record(self, record: Mapping[str, Any]) -> R:
        """A fetched record (every column) as a row; `CorruptRow` if a value breaks its kind."""
        return self.row(
            **{
                name: column.out(record[name], f"{self.name}.{name}")
                for name, column in self.columns.items()
            }
        )


_Record = Callable[[Any], tuple[Any, ...]]


def _record_maker(table: str, written: Sequence[tuple[str, Writer | None]]) -> _Record:
    """`lambda row: (row.c1, write2(row.c2), ...)`, compiled once per table (the rows of a
    batch are a thousand a batch: a loop over the columns per row cost twice as much). A
    NUL-cleaning or JSON writer is skipped for None, which both give back unchanged; the
    NUL check itself is inline. The source holds field names only: identifiers."""
    scope: dict[str, Any] = {"text": text}
    items = []
    for index, (name, write) in enumerate(written):
        if not name.isidentifier():
            raise TypeError(f"{table}: a column name that is not an identifier")
        if write is None:
            items.append(f"r.{name}")
        elif write is _text_or_null:
            items.append(f"v if (v := r.{name}) is None or '\\x00' not in v else text(v)")
        elif write is jsonb:
            scope["jsonb"] = jsonb
            items.append(f"None if (v := r.{name}) is None else jsonb(v)")
        else:
            scope[f"w{index}"] = write
            items.append(f"w{index}(r.{name})")
    source = f"def record(r):\n    return ({', '.join(items)},)"
    exec(compile(source, f"<record {table}>", "exec"), scope)
    record: _Record = scope["record"]
    return record


def columns_of(records: Sequence[tuple[Any, ...]]) -> Params | None:
    """Records as column-wise parameters for `unnest` (None when there are none)."""
    if not records:
        return None
    return tuple(list(column) for column in zip(*records, strict=True))


def select(
    table: Table[Any],
    *,
    where: Sequence[Condition] = (),
    order: str | None = None,
    limit: int | None = None,
) -> tuple[str, list[object]]:
    """`SELECT <table's columns> FROM <table> WHERE ... ORDER BY ... LIMIT ...` and its
    arguments. Conditions whose first value is None are left out."""
    clauses: list[str] = []
    args: list[object] = []
    for template, *values in where:
        if values and values[0] is None:
            continue
        first = len(args) + 1
        args.extend(values)
        clauses.append(template.format(*(f"${first + i}" for i in range(len(values)))))
    sql = f"SELECT {table.column_list()} FROM {table.name}"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    if order is not None:
        sql += f" ORDER BY {order}"
    if limit is not None:
        args.append(limit)
        sql += f" LIMIT ${len(args)}"
    return sql, args
