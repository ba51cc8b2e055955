"""A run as a timeline a person reads: when, how long after the step before, who, what, and
the payload; as text, or as one self-contained HTML page to attach to a bug report. Pure.

Every value in the page comes from the run's events, which hold what agents, tools and
people sent: all of it is escaped, the page loads nothing and runs no script (its content
security policy says so too), and payloads are clipped to `MAX_PAYLOAD_CHARS` each.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from events.envelope import EventEnvelope
from events.json import JsonObject
from events.limits import clip
from events.run_events import (
    DecisionAccepted,
    DecisionHeld,
    DecisionRejected,
    GateEvaluated,
    InterruptExpired,
    InterruptRaised,
    QuarantineLifted,
    RunCancelled,
    RunEventPayload,
    RunStarted,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallScheduled,
    VoteRecorded,
)
from projections.describe import payload_json, summarize

__all__ = ["MAX_PAYLOAD_CHARS", "TimelineRow", "render_html", "render_text", "timeline_rows"]

MAX_PAYLOAD_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class TimelineRow:
    seq: int
    at: datetime
    after_s: float | None
    """Seconds since the event before (None for the first)."""
    type: str
    actor: str
    summary: str
    payload: str
    """The payload as indented JSON, clipped."""

    def to_json(self) -> JsonObject:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "after_s": self.after_s,
            "type": self.type,
            "actor": self.actor,
            "summary": self.summary,
        }


def timeline_rows(events: Sequence[EventEnvelope]) -> list[TimelineRow]:
    rows = []
    previous: int | None = None
    for event in events:
        at_us = event.occurred_at_us
        after = None if previous is None else (at_us - previous) / 1_000_000
        previous = at_us
        text = json.dumps(payload_json(event.payload), indent=2, ensure_ascii=False, default=str)
        rows.append(
            TimelineRow(
                seq=event.seq,
                at=datetime.fromtimestamp(at_us / 1_000_000, tz=UTC),
                after_s=after,
                type=event.type,
                actor=actor(event),
                summary=summarize(event.payload),
                payload=clip(text, MAX_PAYLOAD_CHARS),
            )
        )
    return rows


def actor(event: EventEnvelope) -> str:
    """Who did what the event records: a person, the agent, a tool, a policy, the clock."""
    payload: RunEventPayload = event.payload
    match payload:
        case RunStarted():
            return payload.forked_by or payload.requested_by
        case DecisionAccepted() | DecisionRejected() | DecisionHeld() | VoteRecorded():
            return payload.decided_by
        case RunCancelled():
            return payload.cancelled_by
        case QuarantineLifted():
            return payload.lifted_by
        case InterruptExpired():
            return "system:timeout"
        case GateEvaluated():
            return f"policy:{payload.policy}"
        case ToolCallScheduled():
            return f"tool:{payload.tool}"
        case ToolCallCompleted() | ToolCallFailed():
            return "tool"
        case InterruptRaised():
            return f"agent:{event.agent}"
        case _:
            return f"agent:{event.agent}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"+{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"+{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"+{days}d{hours}h"
    if hours:
        return f"+{hours}h{minutes:02d}m"
    return f"+{minutes}m{secs:02d}s"


def render_text(events: Sequence[EventEnvelope]) -> str:
    lines = [f"{'seq':>5}  {'at (UTC)':<19} {'after':>8}  {'event':<18} {'who':<24} what"]
    for row in timeline_rows(events):
        lines.append(
            f"{row.seq:>5}  {row.at:%Y-%m-%d %H:%M:%S} {duration(row.after_s):>8}  "
            f"{row.type:<18} {clip(row.actor, 24):<24} {clip(row.summary, 110)}"
        )
    return "\n".join(lines)


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.3em} .meta{color:#555;margin-bottom:1em}
table{border-collapse:collapse;width:100%} td,th{padding:4px 8px;border-bottom:1px solid #ddd;
vertical-align:top;text-align:left} th{background:#f4f4f4} .seq,.after{text-align:right;
white-space:nowrap} .who{white-space:nowrap} pre{margin:4px 0;white-space:pre-wrap;
background:#f8f8f8;padding:6px;max-height:30em;overflow:auto} summary{cursor:pointer}
tr.DecisionAccepted td{background:#f3fbf3} tr.DecisionRejected td,
tr.RunFailed td,tr.RunParked td{background:#fdf1f1} tr.InterruptRaised td{background:#fffbea}
"""


def render_html(events: Sequence[EventEnvelope], *, title: str = "") -> str:
    """One self-contained page: no script, no request for anything, every value escaped."""
    first = events[0]
    started = first.payload
    esc = html.escape
    heading = title or f"Run {first.run_id}"
    meta = [f"agent {first.agent} v{first.agent_version}", f"{len(events)} events"]
    if isinstance(started, RunStarted):
        meta.append(f"requested by {started.requested_by}")
        if started.forked_from:
            meta.append(
                f"{started.tool_mode} fork of run {started.forked_from} at seq {started.forked_at}"
                f" (by {started.forked_by})"
            )
    body = []
    for row in timeline_rows(events):
        body.append(
            f'<tr class="{esc(row.type)}"><td class="seq">{row.seq}</td>'
            f"<td>{row.at:%Y-%m-%d %H:%M:%S.%f}</td>"
            f'<td class="after">{esc(duration(row.after_s))}</td>'
            f'<td>{esc(row.type)}</td><td class="who">{esc(row.actor)}</td>'
            f"<td><details><summary>{esc(row.summary)}</summary>"
            f"<pre>{esc(row.payload)}</pre></details></td></tr>"
        )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta http-equiv="Content-Security-Policy" '
            "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
            f"<title>{esc(heading)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{esc(heading)}</h1>",
            f'<div class="meta">{esc(" · ".join(meta))}</div>',
            "<table><thead><tr><th>seq</th><th>at (UTC)</th><th>after</th><th>event</th>"
            "<th>who</th><th>what (click for the payload)</th></tr></thead><tbody>",
            *body,
            "</tbody></table></body></html>",
            "",
        ]
    )
