"""What `countersign demo` prints: the approval card, the replay summary, the statistics. Pure."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from countersign.render import clean
from engine.agent.authorization import Directory, is_listed
from events.approval import ApprovalRequest
from events.notices import ApprovalRequested
from projections.rows import TimelineEntry
from projections.stats import StatRow

__all__ = ["approver", "card", "replay_summary", "rule", "stats_table"]

WIDTH = 76


def rule(title: str = "") -> str:
    if not title:
        return "-" * WIDTH
    return f"-- {title} " + "-" * max(0, WIDTH - len(title) - 4)


def card(notice: ApprovalRequested, now_us: int, *, ids: bool = False) -> str:
    """The approval request as a person reads it: what, why, risk, amount, deadline, choices
    (and with `ids`, the run and interrupt ids and the digest a decision names)."""
    request = notice.request
    rows: list[tuple[str, str]] = [
        ("What", request.title),
        ("Why", request.reasoning or "(the agent gave no reasoning)"),
    ]
    if request.impact:
        rows.append(("Impact", request.impact))
    rows.append(("Risk", _risk(request)))
    if request.amount is not None:
        rows.append(("Amount", f"{request.amount:,.2f}"))
    if request.policy or request.rule:
        rows.append(("Policy", " / ".join(p for p in (request.policy, request.rule) if p)))
    rows.append(("Deadline", _deadline(request, now_us)))
    rows.append(("Who", ", ".join(request.approvers) or f"anyone but {notice.requested_by}"))
    rows.append(("Asked by", f"agent {notice.agent} v{notice.agent_version}, run for "
                 f"{notice.requested_by}"))  # fmt: skip
    rows.append(("Decide", " / ".join(request.allowed)))
    inner = WIDTH - 4
    lines = ["+" + "-" * (WIDTH - 2) + "+", _boxed("APPROVAL NEEDED", inner)]
    lines.append("|" + " " * (WIDTH - 2) + "|")
    for label, value in rows:
        wrapped = textwrap.wrap(clean(value), inner - 10) or [""]
        lines.append(_boxed(f"{label:<9} {wrapped[0]}", inner))
        lines += [_boxed(f"{'':<9} {more}", inner) for more in wrapped[1:]]
    lines.append("+" + "-" * (WIDTH - 2) + "+")
    if ids:  # below the box: ids are copied, not read
        lines += [f"run        {notice.run_id}", f"interrupt  {notice.interrupt_id}"]
        lines.append(f"digest     {request.digest}")
    return "\n".join(lines)


def _boxed(text: str, inner: int) -> str:
    return f"| {text:<{inner}} |"


def _risk(request: ApprovalRequest) -> str:
    risk: str = request.risk
    if request.confidence is not None:
        risk += f" (agent confidence {request.confidence:.0%})"
    return risk


def _deadline(request: ApprovalRequest, now_us: int) -> str:
    if request.deadline_us is None:
        return f"none (on timeout: {request.on_timeout})"
    at = datetime.fromtimestamp(request.deadline_us / 1e6, tz=UTC)
    left_s = max(0, (request.deadline_us - now_us) // 1_000_000)
    hours, rest = divmod(left_s, 3600)
    return (
        f"{at:%Y-%m-%d %H:%M} UTC (in {hours}h{rest // 60:02d}m); on timeout: {request.on_timeout}"
    )


def replay_summary(
    timeline: list[TimelineEntry],
    before: Mapping[str, int],
    after: Mapping[str, int],
) -> str:
    """How the run continued: the events the new worker replayed, and which tools ran where."""
    decided = next(
        (e.seq for e in timeline if e.type in ("DecisionAccepted", "DecisionRejected")), None
    )
    replayed = decided if decided is not None else len(timeline)
    lines = [
        f"Worker 2 started with an empty memory, read this run's {replayed} events from",
        "the log and re-ran the agent code against them up to the interrupt; then it",
        "applied the decision and carried on from exactly that point.",
    ]
    for tool in sorted(set(before) | set(after)):
        paused, resumed = before.get(tool, 0), after.get(tool, 0) - before.get(tool, 0)
        note = "  (result replayed from the log)" if paused and not resumed else ""
        lines.append(f"  {tool:<13} ran {paused}x before the pause, {resumed}x after it{note}")
    return "\n".join(lines)


def stats_table(rows: Sequence[StatRow]) -> str:
    """The decision statistics projection, one line per key."""
    if not rows:
        return "  (no decisions yet)"
    lines = [f"  {'':<14} {'requests':>8} {'approved':>8} {'edited':>6} {'rejected':>8} "
             f"{'expired':>7} {'approval rate':>13} {'median wait':>11}"]  # fmt: skip
    for row in rows:
        rate = "-" if row.approval_rate is None else f"{row.approval_rate:.0%}"
        wait = "-" if row.median_s is None else f"{row.median_s:.1f} s"
        lines.append(
            f"  {row.key[:14]:<14} {row.requests:>8} {row.approved:>8} {row.edited:>6} "
            f"{row.rejected:>8} {row.expired:>7} {rate:>13} {wait:>11}"
        )
    return "\n".join(lines)


def approver(directory: Directory, request: ApprovalRequest, requester: str) -> str:
    """Who the demo answers as: someone the request allows, from the app's directory, never
    the requester (separation of duties)."""
    for principal in directory:
        if principal != requester and is_listed(principal, request.approvers, directory):
            return principal
    named = [a for a in request.approvers if not a.startswith("role:") and a != requester]
    return named[0] if named else "alice"
