"""Replay reports as text for the terminal (`--json` prints `Rerun.to_json()` instead). Reads
the agent's source lines it quotes (I/O: linecache)."""

from __future__ import annotations

import linecache
import os
from collections.abc import Sequence

from engine.core.divergence import CallShape, Site
from engine.core.rerun import Rerun, Step
from events.limits import clip
from projections.describe import summarize

__all__ = ["render_rerun", "render_table", "where"]


def where(site: Site) -> str:
    """`examples/refund.py:62 in refund_agent`, relative to the working directory if under it."""
    path = site.file
    try:
        relative = os.path.relpath(path)
        if not relative.startswith(".."):
            path = relative
    except ValueError:  # another drive (Windows)
        pass
    return f"{path}:{site.line} in {site.function}"


def source_line(site: Site) -> str:
    text = linecache.getline(site.file, site.line).strip()
    return f"{site.line} | {clip(text, 100)}" if text else ""


def render_rerun(report: Rerun, *, app: str, steps: bool = True) -> str:
    lines = [_title(report, app)]
    if steps and report.steps:
        lines.append("")
        lines.extend(_steps(report.steps))
    lines.append("")
    lines.extend(_verdict(report))
    return "\n".join(lines)


def _title(report: Rerun, app: str) -> str:
    against = f"{report.agent} v{report.replayed_with}" if report.replayed_with else "nothing"
    return (
        f"run {report.run_id}: {report.agent} v{report.version}, {report.events} events, "
        f"replayed against {against} of {app}"
    )


def _steps(steps: Sequence[Step]) -> list[str]:
    out = [f"{'seq':>5}  {'event':<18} {'call':>4}  {'status':<9} what happened"]
    for step in steps:
        call = "" if step.call is None else str(step.call)
        summary = clip(summarize(step.envelope.payload), 110)
        out.append(
            f"{step.seq:>5}  {step.envelope.type:<18} {call:>4}  {step.state.status:<9} {summary}"
        )
        if step.made is not None:
            out.append(f"{'':>42}{_made(step.made, step.differs)}")
    return out


def _made(made: CallShape, differs: bool) -> str:
    mark = "✗ code makes" if differs else "✓ code makes"
    at = f"  ({where(made.site)})" if made.site is not None else ""
    return f"{mark} {made.describe()}{at}"


def _verdict(report: Rerun) -> list[str]:
    if report.outcome == "pinned":
        return [f"PARKS: {report.reason}"]
    if report.outcome == "diverges":
        return _diverges(report)
    out = [f"identical: the code reproduces all {report.events} events"]
    state = report.state
    if state is not None and state.open_interrupts:
        titles = "; ".join(
            f"{i.interrupt_id} ({i.request.title})" for i in state.open_interrupts.values()
        )
        out.append(f"waiting   for {titles}")
    for event in report.next:
        out.append(
            f"next      the code appends {type(event).__name__}: {clip(summarize(event), 100)}"
        )
    for effect in report.effects:
        out.append(f"next      the code runs {effect.tool} (not run here)")
    for frame in report.waiting_in:
        out.append(f"agent     waits at {where(frame.site)}")
        line = source_line(frame.site)
        if line:
            out.append(f"          {line}")
        for name, value in frame.locals:
            out.append(f"            {name} = {value}")
    return out


def _diverges(report: Rerun) -> list[str]:
    cause = f" [{report.cause}]" if report.cause else ""
    out = [f"DIVERGES at seq {report.seq}{cause}: {report.reason}"]
    divergence = report.divergence
    if divergence is not None:
        recorded = divergence.recorded.describe() if divergence.recorded else "(no call)"
        now = divergence.new.describe() if divergence.new else "(no call)"
        out.append(f"  recorded  {recorded}")
        out.append(f"  now       {now}")
        if divergence.new is not None and divergence.new.site is not None:
            out.extend(_site_lines(divergence.new.site))
        out.extend(f"  changed   {change.describe()}" for change in divergence.changes)
        if divergence.more_changes:
            out.append(f"  changed   … and {divergence.more_changes} more")
    elif report.error_site is not None:
        out.extend(_site_lines(report.error_site))
    return out


def _site_lines(site: Site) -> list[str]:
    out = [f"  made at   {where(site)}"]
    line = source_line(site)
    if line:
        out.append(f"            {line}")
    return out


def render_table(
    reports: Sequence[Rerun], refused: Sequence[tuple[str, str]], seconds: float
) -> str:
    out = [f"{'RUN':<38} {'AGENT':<16} {'SEQ':>5}  RESULT"]
    for report in reports:
        agent = clip(f"{report.agent} v{report.version}", 16)
        seq = "" if report.seq is None else str(report.seq)
        result = {"identical": "identical", "diverges": "diverges", "pinned": "parks"}[
            report.outcome
        ]
        why = f": {clip(report.reason, 120)}" if report.reason else ""
        out.append(f"{clip(report.run_id, 38):<38} {agent:<16} {seq:>5}  {result}{why}")
    for run_id, why in refused:
        out.append(f"{clip(run_id, 38):<38} {'':<16} {'':>5}  unreadable: {clip(why, 120)}")
    counts = {
        outcome: sum(r.outcome == outcome for r in reports)
        for outcome in ("identical", "diverges", "pinned")
    }
    out.append(
        f"{len(reports) + len(refused)} runs: {counts['identical']} identical, "
        f"{counts['diverges']} diverge, {counts['pinned']} park, {len(refused)} unreadable "
        f"({seconds:.2f} s)"
    )
    return "\n".join(out)
