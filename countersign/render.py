"""What the CLI prints for people: tables with headers and aligned columns, and run views.
Pure (`--json` bypasses it).

Every value comes from the log or the projections, so any of it may be hostile: `clean` turns
control characters (a terminal escape sequence in a tool argument, a reason, a title) into
visible `\\x..` text before anything reaches the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from consumers import DeadLetter, FeedItem
from events.json import canonical_json
from events.notices import ActionNotified, ApprovalRequested, DecisionOutcome
from projections.inbox import InboxItem, TeamOverdue, at_deadline
from projections.recommend import Recommendation
from projections.rows import AuditRow, InterruptRow, RunRow, TimelineEntry
from projections.stats import StatRow
from projections.status import ProjectionStatus
from projections.verify import RunVerdict
from projections.whatif import WhatIf

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
WIDE = 60
"""The widest a free-text cell gets in a table (titles, reasons); `--json` has all of it."""


def clean(text: object, width: int | None = None) -> str:
    """`text` with control characters made visible, cut to `width` with an ellipsis."""
    out = str(text).translate(_CONTROL)
    if width is not None and len(out) > width:
        out = out[: max(0, width - 1)] + "…"
    return out


def table(header: Sequence[str], rows: Sequence[Sequence[object]], *, right: str = "") -> str:
    """Aligned columns under a header row; the columns named in `right` (a space-separated
    list of header names) are right-aligned (numbers). The last column is not padded."""
    cells = [[clean(h) for h in header]] + [[clean(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    aligned = set(right.split())
    lines = []
    for row in cells:
        parts = []
        for i, cell in enumerate(row):
            last = i == len(row) - 1
            if header[i] in aligned:
                parts.append(cell.rjust(widths[i]))
            else:
                parts.append(cell if last else cell.ljust(widths[i]))
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _amount(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


# -- runs ---------------------------------------------------------------------------------------


def run_header(run: RunRow) -> str:
    lines = [
        f"run       {run.run_id}",
        f"agent     {clean(run.agent)} v{clean(run.agent_version)}   "
        f"requested by {clean(run.requested_by)}",
        f"status    {run.status}   started {when(run.started_at)}   "
        f"finished {when(run.finished_at)}",
    ]
    if run.output is not None:
        lines.append(f"output    {clean(canonical_json(run.output))}")
    if run.error:  # a parked run's explanation spans lines: each is cleaned on its own
        first, *rest = run.error.splitlines() or [""]
        lines.append(f"error     {clean(first)}")
        lines.extend(f"          {clean(line)}" for line in rest)
    return "\n".join(lines)


def timeline(entries: Sequence[TimelineEntry]) -> str:
    rows = [(e.seq, when(e.occurred_at), e.type, clean(e.summary, 100)) for e in entries]
    return table(("SEQ", "AT", "TYPE", "WHAT"), rows, right="SEQ")


def interrupts(rows: Sequence[InterruptRow]) -> str:
    return table(
        ("STATUS", "INTERRUPT", "TITLE", "RISK", "ALLOWED", "DEADLINE"),
        [
            (
                r.status,
                r.interrupt_id,
                clean(r.title, WIDE),
                r.risk,
                "/".join(r.allowed),
                when(r.deadline),
            )
            for r in rows
        ],
    )


def runs(rows: Sequence[RunRow]) -> str:
    if not rows:
        return "(no runs)"
    return table(
        ("RUN", "AGENT", "VERSION", "STATUS", "REQUESTED BY", "STARTED", "FINISHED"),
        [
            (
                r.run_id,
                clean(r.agent, 24),
                clean(r.agent_version, 12),
                r.status,
                clean(r.requested_by, 24),
                when(r.started_at),
                when(r.finished_at),
            )
            for r in rows
        ],
    )


def audit(rows: Sequence[AuditRow]) -> str:
    if not rows:
        return "(no audit entries)"
    out = []
    for row in rows:
        why = clean(row.reason or "", WIDE)
        if row.diff:
            why = (why + "  " if why else "") + "diff " + clean(canonical_json(row.diff), WIDE)
        out.append(
            (
                when(row.at),
                row.run_id,
                row.seq,
                row.action,
                clean(row.actor, 24),
                row.kind or "",
                clean(row.tool or "", 24),
                why,
            )
        )
    return table(("AT", "RUN", "SEQ", "ACTION", "ACTOR", "KIND", "TOOL", "WHY"), out, right="SEQ")


# -- the inbox, statistics, recommendations, what-if ------------------------------------------


def inbox(items: Sequence[InboxItem], *, closed: bool) -> str:
    if not items:
        return "(nothing closed yet)" if closed else "(nothing in the inbox)"
    rows = []
    for item in items:
        r = item.request
        level = f"{r.level}/{r.levels}" + (f" {r.votes}/{r.quorum} votes" if r.quorum > 1 else "")
        row: list[object] = [
            r.interrupt_id,
            item.sla,
            duration(item.age_s),
            when(r.deadline),
            r.risk,
            _amount(r.amount),
            clean(r.agent, 16),
            clean(r.title, WIDE),
            level,
        ]
        if closed:
            why = f": {r.reason}" if r.reason else ""
            row.append(clean(f"{r.status} by {r.decided_by or '-'}{why}", WIDE))
        else:
            row.append(clean(", ".join(item.deciders) or "anyone", WIDE))
        rows.append(row)
    last = "OUTCOME" if closed else "MAY DECIDE"
    header = ("INTERRUPT", "SLA", "AGE", "DEADLINE", "RISK", "AMOUNT", "AGENT", "WHAT", "LEVEL")
    return table((*header, last), rows, right="AGE AMOUNT")


def inbox_long(items: Sequence[InboxItem]) -> str:
    """Each request in full: what, why, who may decide, the run, the deadline."""
    lines = []
    for item in items:
        r = item.request
        amount = "" if r.amount is None else f"  amount {r.amount:g}"
        lines.append(f"{item.sla:<11} {clean(r.title)}  [{r.risk} risk{amount}]  {r.interrupt_id}")
        lines.append(
            f"    run {r.run_id}  agent {clean(r.agent)}  asked by {clean(r.requested_by or '-')}"
        )
        if r.reasoning:
            lines.append(f"    why: {clean(r.reasoning)}")
        level = f"level {r.level}/{r.levels}" + (
            f", {r.votes}/{r.quorum} votes" if r.quorum > 1 else ""
        )
        lines.append(f"    may decide: {clean(', '.join(item.deciders))}  ({level})")
        lines.append(
            f"    age {duration(item.age_s)}  deadline {when(r.deadline)} (then {at_deadline(r)})"
        )
        if r.status != "open":
            why = f": {clean(r.reason)}" if r.reason else ""
            lines.append(
                f"    {r.status} by {clean(r.decided_by or '-')} at {when(r.closed_at)}{why}"
            )
    return "\n".join(lines) if lines else "(nothing in the inbox)"


def teams(rows: Sequence[TeamOverdue]) -> str:
    return table(
        ("TEAM", "OVERDUE", "OLDEST DUE"),
        [(clean(t.team, 40), t.overdue, when(t.oldest_deadline)) for t in rows],
        right="OVERDUE",
    )


def stats(rows: Sequence[StatRow], by: str) -> str:
    if not rows:
        return "(no decisions yet)"
    header = (
        by.upper(),
        "REQUESTS",
        "OPEN",
        "APPROVED",
        "EDITED",
        "REJECTED",
        "RESPONDED",
        "EXPIRED",
        "ESCALATED",
        "WITHDRAWN",
        "AUTO",
        "RATE",
        "MEDIAN",
        "P90",
    )
    body = [
        (
            clean(r.key, 32),
            r.requests,
            r.open,
            r.approved,
            r.edited,
            r.rejected,
            r.responded,
            r.expired,
            r.escalated,
            r.withdrawn,
            r.auto_approved,
            _rate(r.approval_rate),
            duration(r.median_s),
            duration(r.p90_s),
        )
        for r in rows
    ]
    return table(header, body, right=" ".join(header[1:]))


def recommendations(found: Sequence[Recommendation]) -> str:
    if not found:
        return "(no recommendations: not enough decisions yet, or nothing stands out)"
    lines = []
    for r in found:
        lines.append(f"[{r.kind}] {clean(r.subject)}: {clean(r.suggestion)}")
        lines.append(f"    {clean(r.message)}")
        lines.append(f"    evidence: {clean(json.dumps(r.evidence, ensure_ascii=False))}")
    return "\n".join(lines)


def what_if(report: WhatIf) -> str:
    data = report.to_json()
    lines = [f"policy {clean(report.policy.name)} against {report.calls} past calls:"]
    for rule in data["rules"]:  # type: ignore[union-attr]
        assert isinstance(rule, dict)
        lines.append(f"  rule {rule['rule']}: {clean(rule['text'])}")
        lines.append(f"    {clean(rule['summary'])} (matched {rule['matched']})")
    lines.append(f"  in all: {clean(data['summary'])}")
    return "\n".join(lines)


# -- verify, projections status ---------------------------------------------------------------


def verdicts(found: Sequence[RunVerdict], *, all_runs: bool) -> str:
    lines = []
    for v in found:
        first = v.first_break
        if first is not None:
            lines.append(
                f"BROKEN {v.run_id}: {first.where} at seq {first.seq}: {clean(first.what)}"
            )
        elif not all_runs and not v.log_events and not v.projected_events:
            lines.append(f"?      {v.run_id}: no such run in the log or the projections")
        elif not all_runs:
            pending = f", {v.pending} not projected yet" if v.pending else ""
            lines.append(f"ok     {v.run_id}: {v.log_events} events chained{pending}")
    broken = sum(not v.ok for v in found)
    lines.append(f"{len(found)} run{'' if len(found) == 1 else 's'} checked, {broken} broken")
    return "\n".join(lines)


def status(found: ProjectionStatus) -> str:
    head = f"projection {found.projection} in schema {found.schema}, topic {found.topic}"
    rows = [
        (
            p.partition,
            p.position,
            p.end_offset,
            p.lag,
            f"{p.lag_s:.1f}",
            when(p.last_event_at),
            "PAST THE END" if p.past_end else "",
        )
        for p in found.partitions
    ]
    body = table(
        ("PARTITION", "POSITION", "END", "LAG", "LAG SECONDS", "LAST EVENT", ""),
        rows,
        right="PARTITION POSITION END LAG",
    )
    lines = [head, body, f"total lag {found.lag} records, {found.lag_s:.1f}s"]
    lines += [f"problem: {clean(problem)}" for problem in found.problems]
    if found.remedy:
        lines.append(f"what to do: {clean(found.remedy)}")
    return "\n".join(lines)


# -- the approvals feed and the dead letters --------------------------------------------------


def notices(items: Sequence[FeedItem]) -> str:
    if not items:
        return "(no notices)"
    rows = []
    for item in items:
        n = item.notice
        match n:
            case ApprovalRequested():
                about, what = n.interrupt_id, f"{n.request.title} (risk {n.request.risk})"
            case DecisionOutcome():
                verdict = n.status or ("accepted" if n.accepted else "refused")
                about = n.interrupt_id
                what = f"{n.kind} by {n.decided_by}: {verdict}" + (
                    f" ({n.reason})" if n.reason else ""
                )
            case ActionNotified():
                about, what = f"call {n.call}", f"{n.tool} ran ({n.policy}: {n.reason})"
        rows.append(
            (f"{item.partition}:{item.offset}", type(n).__name__, n.run_id, about, clean(what, 80))
        )
    return table(("AT", "NOTICE", "RUN", "INTERRUPT", "WHAT"), rows)


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def dead_letters(letters: Sequence[DeadLetter]) -> str:
    if not letters:
        return "(no dead letters)"
    rows = []
    for d in letters:
        source = f"{d.source_topic}[{d.source_partition}]@{d.source_offset}"
        requeued = ", ".join(f"by {r.by}" for r in d.requeues) or "-"
        rows.append(
            (
                f"{d.partition}:{d.offset}",
                _stamp(d.timestamp_ms),
                clean(source, 48),
                clean(d.key or "-", 40),
                d.size,
                clean(requeued, 30),
                clean(d.reason, WIDE),
            )
        )
    header = ("ENTRY", "AT", "FROM", "KEY", "BYTES", "REQUEUED", "REASON")
    return table(header, rows, right="BYTES")


def dead_letter(letter: DeadLetter, *, preview: int = 256) -> str:
    """One entry: its coordinates, the reason, the requeues, the first bytes as hex and text."""
    head = letter.value[:preview]
    text = head.decode("utf-8", errors="replace")
    lines = [
        f"entry      {letter.partition}:{letter.offset}  ({_stamp(letter.timestamp_ms)})",
        f"from       {clean(letter.source_topic)}[{letter.source_partition}]"
        f"@{letter.source_offset}",
        f"key        {clean(letter.key or '-')}",
        f"reason     {clean(letter.reason)}",
        f"bytes      {letter.size}"
        + (f" (first {preview} below)" if letter.size > preview else ""),
    ]
    for r in letter.requeues:
        lines.append(
            f"requeued   by {clean(r.by)} at {_stamp(r.at_ms)} to partition {r.partition} "
            f"offset {r.offset}"
        )
    lines.append(f"hex        {head.hex(' ', 2)}")
    lines.append(f"text       {clean(text)}")
    return "\n".join(lines)
