"""Rows to PostgreSQL values and back, derived from the row types: round trips, the refusals
of rows that break their type, and the one read-query builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections import CorruptRow
from projections.rows import AuditRow, InterruptRow, RunRow
from projections.store_columns import Choice, Column, Jsonb, Plain, Table, Text, select
from projections.store_tables import AUDIT, ERRORS, EVENTS, INTERRUPTS, RUNS

AT = datetime(2025, 11, 21, 12, 0, tzinfo=UTC)


def as_read_back(table: Table[object], row: object, **generated: object) -> object:
    """Written and fetched again, as the database would hand the record back."""
    return table.from_record(
        {**dict(zip(table.written, table.record(row), strict=True)), **generated}
    )


def test_rows_come_back_as_they_went_in() -> None:
    run = RunRow(
        run_id="r1",
        agent="refunds",
        agent_version="1",
        requested_by="bob",
        status="waiting",
        started_at=AT,
        updated_at=AT,
        finished_at=None,
        last_seq=3,
        open_interrupts=1,
        input={"order": "A-1", "items": [1, 2.5, None, True]},
        output=None,
        error=None,
    )
    interrupt = InterruptRow(
        interrupt_id="r1:i",
        run_id="r1",
        seq=2,
        call=0,
        kind="tool",
        title="refund",
        tool="refund",
        args={"amount": 20.0},
        risk="high",
        amount=20.0,
        policy="p@1",
        approvers=("role:lead", "alice"),
        allowed=("approve", "reject"),
        deadline=None,
        on_timeout="reject",
        level=0,
        quorum=1,
        votes=0,
        status="open",
        raised_at=AT,
        closed_at=None,
        decided_by=None,
        decision_kind=None,
        reason=None,
        excluded=("bob",),
    )
    audit = AuditRow(run_id="r1", seq=2, at=AT, action="interrupt_raised", actor="agent:refunds")

    assert as_read_back(RUNS, run) == run  # type: ignore[arg-type]
    assert as_read_back(INTERRUPTS, interrupt) == interrupt  # type: ignore[arg-type]
    assert as_read_back(AUDIT, audit, id=7) == AuditRow(  # type: ignore[arg-type]
        id=7, run_id="r1", seq=2, at=AT, action="interrupt_raised", actor="agent:refunds"
    )
    assert "id" not in AUDIT.written  # the database numbers the audit
    assert AUDIT.column_list(written=True).startswith('"run_id", "seq"')


def test_a_column_map_must_name_exactly_the_row_fields() -> None:
    @dataclass(frozen=True)
    class Pair:
        a: int
        b: str

    with pytest.raises(TypeError, match="fields without a column"):
        Table("t", Pair, {"a": Plain("integer")})
    with pytest.raises(TypeError, match="columns without"):
        Table("t", Pair, {"a": Plain("integer"), "b": Text(), "c": Text()})


@pytest.mark.parametrize(
    ("column", "stored", "complaint"),
    [
        (Choice(("open", "closed")), "opened", "not one of open, closed"),
        (Jsonb("object"), "[1, 2]", "not a JSON object"),
        (Jsonb("strings"), '["a", 1]', "not a JSON array of strings"),
        (Jsonb("strings"), "null", "not a JSON array of strings"),
    ],
)
def test_a_stored_value_that_breaks_its_type_is_refused_by_name(
    column: Choice | Jsonb, stored: str, complaint: str
) -> None:
    with pytest.raises(CorruptRow, match=f"cs_x.y holds .*{complaint}"):
        column.out(stored, "cs_x.y")


def test_long_corrupt_values_are_shown_cut() -> None:
    with pytest.raises(CorruptRow) as refused:
        Choice(("a",)).out("x" * 10_000, "cs_x.y")

    assert len(str(refused.value)) < 200


def test_text_is_cleaned_going_in_and_null_can_read_as_empty() -> None:
    table = Table("t", _Note, {"text": Text(null_as=""), "data": Jsonb()})

    (record,) = table.records([_Note(text="a\x00b", data={"x": float("nan"), "k\x00": "\x00"})])

    assert record == ("a\ufffdb", '{"x":null,"k\ufffd":"\ufffd"}')
    assert table.from_record({"text": None, "data": None}) == _Note(text="", data=None)


@dataclass(frozen=True)
class _Note:
    text: str
    data: object


def test_select_leaves_out_conditions_without_a_value_and_numbers_the_rest() -> None:
    sql, args = select(
        RUNS,
        where=[
            ("status = {}", None),
            ("agent = {}", "refunds"),
            ("fixed",),
            ("a = {0} AND b <> {1} AND c ? {1}", ["x"], "p"),
        ],
        order="started_at DESC",
        limit=5,
    )

    assert sql.startswith(f"SELECT {RUNS.column_list()} FROM cs_runs WHERE ")
    assert sql.endswith(
        "WHERE agent = $1 AND fixed AND a = $2 AND b <> $3 AND c ? $3"
        " ORDER BY started_at DESC LIMIT $4"
    )
    assert args == ["refunds", ["x"], "p", 5]
    assert select(RUNS) == (f"SELECT {RUNS.column_list()} FROM cs_runs", [])


# -- the compiled record of a table: what the loop over the column writers gave ---------------

_WORD = st.text(alphabet=st.sampled_from("ab\x00\ufffd"), max_size=4)
_TEXT = st.none() | _WORD
_JSON = st.recursive(
    st.none() | st.integers() | st.floats() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_WORD, inner),
    max_leaves=6,
)


def _value(column: Column) -> st.SearchStrategy[object]:
    if isinstance(column, Text):
        return _TEXT | st.integers()  # not text: refused the same way
    if isinstance(column, Jsonb):
        strings = st.lists(_WORD, max_size=2).map(tuple) | st.none()
        return strings if column.shape == "strings" else _JSON
    return _JSON | st.binary(max_size=3)  # passed through untouched


def _rows(table: Table[Any]) -> st.SearchStrategy[object]:
    fields = {name: _value(column) for name, column in table.columns.items()}
    return st.fixed_dictionaries(fields).map(lambda values: table.row(**values))


def _by_the_loop(table: Table[Any], row: object) -> tuple[object, ...]:
    values = [getattr(row, name) for name in table.written]
    writers = [table.columns[name].writer for name in table.written]
    return tuple(v if w is None else w(v) for v, w in zip(values, writers, strict=True))


def _outcome(make: Callable[[], object]) -> tuple[str, object]:
    try:
        return "made", make()
    except Exception as error:  # compared: the same refusal both ways
        return type(error).__name__, str(error)


@pytest.mark.parametrize("table", [EVENTS, RUNS, INTERRUPTS, AUDIT, ERRORS], ids=lambda t: t.name)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_record_is_what_each_column_writer_gives(table: Table[Any], data: st.DataObject) -> None:
    row = data.draw(_rows(table))
    made, expected = _outcome(lambda: table.record(row)), _outcome(lambda: _by_the_loop(table, row))
    assert repr(made) == repr(expected)  # repr: NaN is equal to itself there
