"""Our rows to and from PostgreSQL values: column lists, column-wise parameters for
`unnest`, and rows back from fetched records. Part of the PostgreSQL adapter.

PostgreSQL refuses NUL characters in text and `\\u0000` in jsonb, and JSON has no NaN: such
values are replaced here (NUL by U+FFFD, non-finite numbers by null) so that one odd string
in a tool result cannot keep a run's row from moving on. The exact bytes stay in
`cs_events.raw`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, cast

from events.json import Json, JsonObject
from projections.batch import LoggedEvent, Unusable
from projections.describe import payload_json
from projections.fold import timestamp
from projections.rows import (
    AuditAction,
    AuditRow,
    ErrorRow,
    EventRow,
    InterruptRow,
    InterruptStatus,
    RunRow,
    RunStatus,
)

COLUMN_TYPES: dict[str, dict[str, str]] = {
    "cs_events": {
        "run_id": "text",
        "seq": "bigint",
        "event_id": "text",
        "type": "text",
        "occurred_at": "timestamptz",
        "agent": "text",
        "agent_version": "text",
        "causation_id": "text",
        "correlation_id": "text",
        "payload": "jsonb",
        "partition": "integer",
        "offset": "bigint",
        "hash": "text",
        "prev_hash": "text",
        "raw": "bytea",
    },
    "cs_runs": {
        "run_id": "text",
        "agent": "text",
        "agent_version": "text",
        "requested_by": "text",
        "status": "text",
        "started_at": "timestamptz",
        "updated_at": "timestamptz",
        "finished_at": "timestamptz",
        "last_seq": "bigint",
        "open_interrupts": "integer",
        "input": "jsonb",
        "output": "jsonb",
        "error": "text",
    },
    "cs_interrupts": {
        "interrupt_id": "text",
        "run_id": "text",
        "seq": "bigint",
        "call": "integer",
        "kind": "text",
        "title": "text",
        "tool": "text",
        "args": "jsonb",
        "risk": "text",
        "amount": "double precision",
        "policy": "text",
        "approvers": "jsonb",
        "allowed": "jsonb",
        "deadline": "timestamptz",
        "on_timeout": "text",
        "level": "integer",
        "quorum": "integer",
        "votes": "integer",
        "status": "text",
        "raised_at": "timestamptz",
        "closed_at": "timestamptz",
        "decided_by": "text",
        "decision_kind": "text",
        "reason": "text",
        "agent": "text",
        "requested_by": "text",
        "reasoning": "text",
        "impact": "text",
        "rule": "text",
        "confidence": "double precision",
        "escalation": "integer",
        "levels": "integer",
        "excluded": "jsonb",
        "edited_args": "jsonb",
    },
    "cs_audit": {
        "run_id": "text",
        "seq": "bigint",
        "at": "timestamptz",
        "action": "text",
        "interrupt_id": "text",
        "decision_id": "text",
        "actor": "text",
        "tool": "text",
        "kind": "text",
        "reason": "text",
        "policy": "text",
        "risk": "text",
        "amount": "double precision",
        "args": "jsonb",
        "edited_args": "jsonb",
        "diff": "jsonb",
        "detail": "jsonb",
        "agent": "text",
    },
    "cs_projection_errors": {
        "projection": "text",
        "topic": "text",
        "partition": "integer",
        "offset": "bigint",
        "reason": "text",
        "raw": "bytea",
    },
}

_RESERVED = frozenset({"partition", "offset"})


def column_list(table: str) -> str:
    """The table's columns (as `COLUMN_TYPES` orders them) for a SELECT or an INSERT."""
    return ", ".join(f'"{c}"' if c in _RESERVED else c for c in COLUMN_TYPES[table])


def select_unnest(table: str) -> str:
    """`SELECT c1, c2::jsonb, ... FROM unnest($1::text[], $2::text[], ...) AS u(c1, c2, ...)`:
    one row per array index; jsonb travels as text and is cast on the server."""
    selects, arrays = [], []
    for index, sql_type in enumerate(COLUMN_TYPES[table].values(), start=1):
        arrays.append(f"${index}::{'text' if sql_type == 'jsonb' else sql_type}[]")
        selects.append(f"c{index}::jsonb" if sql_type == "jsonb" else f"c{index}")
    aliases = ", ".join(f"c{i}" for i in range(1, len(arrays) + 1))
    return f"SELECT {', '.join(selects)} FROM unnest({', '.join(arrays)}) AS u({aliases})"


EVENT_COLUMNS = column_list("cs_events")
RUN_COLUMNS = column_list("cs_runs")
INTERRUPT_COLUMNS = column_list("cs_interrupts")
AUDIT_COLUMNS = column_list("cs_audit")
ERROR_COLUMNS = column_list("cs_projection_errors")

Params = tuple[list[Any], ...]


# -- values going in ----------------------------------------------------------------------------


def text(value: str) -> str:
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def text_or_null(value: str | None) -> str | None:
    return None if value is None else text(value)


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def jsonb(value: Json) -> str | None:
    """JSON text for a jsonb parameter; Python None is SQL NULL."""
    if value is None:
        return None
    try:
        dumped = _ENCODER.encode(value)
    except ValueError:  # NaN or infinity somewhere
        return _ENCODER.encode(_clean(value))
    if "\\u0000" in dumped:
        return _ENCODER.encode(_clean(value))
    return dumped


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


def _columns(rows: Sequence[tuple[Any, ...]]) -> Params | None:
    if not rows:
        return None
    return tuple(list(column) for column in zip(*rows, strict=True))


def event_params(rows: Sequence[EventRow]) -> Params:
    columns = _columns(event_records(rows))
    assert columns is not None
    return columns


def event_records(rows: Sequence[EventRow]) -> list[tuple[Any, ...]]:
    # Identifiers are not cleaned: one holding NUL is refused, and the projector stores that
    # event as an error (the hot path stays lean; payloads, which people write, are cleaned).
    return [
        (
            r.run_id,
            r.seq,
            r.event_id,
            r.type,
            r.occurred_at,
            r.agent,
            r.agent_version,
            r.causation_id,
            r.correlation_id,
            jsonb(r.payload),
            r.partition,
            r.offset,
            r.hash,
            r.prev_hash,
            r.raw,
        )
        for r in rows
    ]


def logged_records(events: Sequence[LoggedEvent]) -> list[tuple[Any, ...]]:
    """The events index records of `events`, straight from the envelopes (what
    `event_records([event_row(e) ...])` gives, without building the rows: the hot path)."""
    return [
        (
            env.run_id,
            env.seq,
            env.event_id,
            type(env.payload).__name__,
            timestamp(env.occurred_at_us),
            env.agent,
            env.agent_version,
            env.causation_id,
            env.correlation_id,
            jsonb(payload_json(env.payload)),
            e.partition,
            e.offset,
            e.hash,
            env.prev_hash,
            e.raw,
        )
        for e in events
        for env in (e.envelope,)
    ]


def columns_of(records: Sequence[tuple[Any, ...]]) -> Params:
    """Records as column-wise parameters for `unnest`."""
    columns = _columns(records)
    assert columns is not None
    return columns


def run_params(rows: Sequence[RunRow]) -> Params | None:
    return _columns(
        [
            (
                text(r.run_id),
                text(r.agent),
                text(r.agent_version),
                text(r.requested_by),
                r.status,
                r.started_at,
                r.updated_at,
                r.finished_at,
                r.last_seq,
                r.open_interrupts,
                jsonb(r.input),
                jsonb(r.output),
                text_or_null(r.error),
            )
            for r in rows
        ]
    )


def interrupt_params(rows: Sequence[InterruptRow]) -> Params | None:
    return _columns(
        [
            (
                text(r.interrupt_id),
                text(r.run_id),
                r.seq,
                r.call,
                text(r.kind),
                text(r.title),
                text_or_null(r.tool),
                jsonb(r.args),
                text(r.risk),
                r.amount,
                text(r.policy),
                jsonb(list(r.approvers)),
                jsonb(list(r.allowed)),
                r.deadline,
                text(r.on_timeout),
                r.level,
                r.quorum,
                r.votes,
                r.status,
                r.raised_at,
                r.closed_at,
                text_or_null(r.decided_by),
                text_or_null(r.decision_kind),
                text_or_null(r.reason),
                text(r.agent),
                text(r.requested_by),
                text(r.reasoning),
                text(r.impact),
                text(r.rule),
                r.confidence,
                r.escalation,
                r.levels,
                jsonb(list(r.excluded)),
                jsonb(r.edited_args),
            )
            for r in rows
        ]
    )


def audit_records(rows: Sequence[AuditRow]) -> list[tuple[Any, ...]]:
    return [
        (
            text(r.run_id),
            r.seq,
            r.at,
            r.action,
            text_or_null(r.interrupt_id),
            text_or_null(r.decision_id),
            text(r.actor),
            text_or_null(r.tool),
            text_or_null(r.kind),
            text_or_null(r.reason),
            text_or_null(r.policy),
            text_or_null(r.risk),
            r.amount,
            jsonb(r.args),
            jsonb(r.edited_args),
            jsonb(r.diff),
            jsonb(r.detail),
            text_or_null(r.agent),
        )
        for r in rows
    ]


def error_params(projection: str, topic: str, items: Sequence[Unusable]) -> Params | None:
    return _columns(
        [(projection, topic, i.partition, i.offset, text(i.reason), i.raw) for i in items]
    )


# -- rows coming out ----------------------------------------------------------------------------


def _json(value: str | None) -> Json:
    if value is None:
        return None
    loaded: Json = json.loads(value)
    return loaded


def json_object(value: str | None) -> JsonObject | None:
    """A jsonb column that holds an object (None for null or anything else)."""
    loaded = _json(value)
    return loaded if isinstance(loaded, dict) else None


def _strings(value: str | None) -> tuple[str, ...]:
    loaded = _json(value)
    return tuple(str(v) for v in loaded) if isinstance(loaded, list) else ()


def run_from(r: Any) -> RunRow:
    return RunRow(
        run_id=r["run_id"],
        agent=r["agent"],
        agent_version=r["agent_version"],
        requested_by=r["requested_by"],
        status=cast(RunStatus, r["status"]),
        started_at=r["started_at"],
        updated_at=r["updated_at"],
        finished_at=r["finished_at"],
        last_seq=r["last_seq"],
        open_interrupts=r["open_interrupts"],
        input=_json(r["input"]),
        output=_json(r["output"]),
        error=r["error"],
    )


def interrupt_from(r: Any) -> InterruptRow:
    return InterruptRow(
        interrupt_id=r["interrupt_id"],
        run_id=r["run_id"],
        seq=r["seq"],
        call=r["call"],
        kind=r["kind"],
        title=r["title"],
        tool=r["tool"],
        args=json_object(r["args"]),
        risk=r["risk"],
        amount=r["amount"],
        policy=r["policy"],
        approvers=_strings(r["approvers"]),
        allowed=_strings(r["allowed"]),
        deadline=r["deadline"],
        on_timeout=r["on_timeout"],
        level=r["level"],
        quorum=r["quorum"],
        votes=r["votes"],
        status=cast(InterruptStatus, r["status"]),
        raised_at=r["raised_at"],
        closed_at=r["closed_at"],
        decided_by=r["decided_by"],
        decision_kind=r["decision_kind"],
        reason=r["reason"],
        agent=r["agent"],
        requested_by=r["requested_by"],
        reasoning=r["reasoning"],
        impact=r["impact"],
        rule=r["rule"],
        confidence=r["confidence"],
        escalation=r["escalation"],
        levels=r["levels"],
        excluded=_strings(r["excluded"]),
        edited_args=json_object(r["edited_args"]),
    )


def audit_from(r: Any) -> AuditRow:
    return AuditRow(
        id=r["id"],
        run_id=r["run_id"],
        seq=r["seq"],
        at=r["at"],
        action=cast(AuditAction, r["action"]),
        interrupt_id=r["interrupt_id"],
        decision_id=r["decision_id"],
        actor=r["actor"],
        tool=r["tool"],
        kind=r["kind"],
        reason=r["reason"],
        policy=r["policy"],
        risk=r["risk"],
        amount=r["amount"],
        args=json_object(r["args"]),
        edited_args=json_object(r["edited_args"]),
        diff=json_object(r["diff"]),
        detail=json_object(r["detail"]),
        agent=r["agent"],
    )


def event_from(r: Any) -> EventRow:
    payload = json_object(r["payload"])
    return EventRow(
        run_id=r["run_id"],
        seq=r["seq"],
        event_id=r["event_id"],
        type=r["type"],
        occurred_at=r["occurred_at"],
        agent=r["agent"],
        agent_version=r["agent_version"],
        causation_id=r["causation_id"],
        correlation_id=r["correlation_id"],
        payload=payload if payload is not None else {},
        partition=r["partition"],
        offset=r["offset"],
        hash=r["hash"],
        prev_hash=r["prev_hash"],
        raw=bytes(r["raw"]),
    )


def error_from(r: Any) -> ErrorRow:
    return ErrorRow(
        projection=r["projection"],
        topic=r["topic"],
        partition=r["partition"],
        offset=r["offset"],
        reason=r["reason"],
        raw=bytes(r["raw"]),
        recorded_at=r["recorded_at"],
    )
