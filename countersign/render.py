"""Plain-text rendering of projection rows for the terminal (`--json` bypasses it)."""

from __future__ import annotations

from datetime import datetime

from events.json import canonical_json
from projections.rows import AuditRow, InterruptRow, RunRow, TimelineEntry


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def run_header(run: RunRow) -> str:
    lines = [
        f"run       {run.run_id}",
        f"agent     {run.agent} v{run.agent_version}   requested by {run.requested_by}",
        f"status    {run.status}   started {_when(run.started_at)}   "
        f"finished {_when(run.finished_at)}",
    ]
    if run.output is not None:
        lines.append(f"output    {canonical_json(run.output)}")
    if run.error:
        lines.append(f"error     {run.error}")
    return "\n".join(lines)


def timeline(entries: list[TimelineEntry]) -> str:
    return "\n".join(
        f"{e.seq:>4}  {_when(e.occurred_at)}  {e.type:<20} {e.summary}" for e in entries
    )


def interrupts(rows: list[InterruptRow]) -> str:
    out = []
    for row in rows:
        out.append(
            f"  {row.status:<9} {row.interrupt_id}  {row.title}  risk={row.risk}"
            f"  allowed={'/'.join(row.allowed)}  deadline={_when(row.deadline)}"
        )
    return "\n".join(out)


def audit(rows: list[AuditRow]) -> str:
    out = []
    for row in rows:
        what = row.tool or ""
        why = f"  why: {row.reason}" if row.reason else ""
        diff = f"  diff: {canonical_json(row.diff)}" if row.diff else ""
        out.append(
            f"{_when(row.at)}  {row.run_id[:8]}#{row.seq:<3} {row.action:<18} "
            f"{row.actor:<14} {row.kind or '':<8} {what}{why}{diff}"
        )
    return "\n".join(out) if out else "(no audit entries)"
