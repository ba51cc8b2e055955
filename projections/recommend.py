"""Recommendations from decision history, each with the evidence behind it. Pure.

- relax: a tool whose requests people approved ≥ `auto_rate` of the time over ≥
  `min_decisions` decisions is a candidate for AUTO (all of them low risk) or NOTIFY;
- tighten: ≤ `tighten_rate` approved: the rule or the tool needs work;
- calibrate: per tool, the lowest agent confidence above which people approved ≥
  `calibration_rate` (over ≥ `min_decisions` decisions above it);
- fatigue: an approver who approves ≥ `fatigue_rate` of ≥ `min_decisions` requests with a
  median under `fatigue_seconds` (rubber-stamping);
- disagreement: on similar requests (same tool, similar arguments: see `similarity`), one
  approver approves and another rejects (approval rates `disagreement_gap` apart);
- repeated_edit: the same edit made ≥ `repeated_edit_min` times.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from events.json import Json, JsonObject, canonical_json
from projections.fold import edit_diff
from projections.stats import DecisionFact, percentile

RecommendationKind: TypeAlias = Literal[
    "relax", "tighten", "calibrate", "fatigue", "disagreement", "repeated_edit"
]
KINDS: tuple[RecommendationKind, ...] = (
    "relax",
    "tighten",
    "calibrate",
    "fatigue",
    "disagreement",
    "repeated_edit",
)
_SAMPLES = 5


@dataclass(frozen=True, kw_only=True)
class RecommendationSettings:
    """Thresholds; the defaults are the issue's (N = 20, 95 %, 30 %)."""

    min_decisions: int = 20
    auto_rate: float = 0.95
    tighten_rate: float = 0.30
    calibration_rate: float = 0.95
    fatigue_rate: float = 0.95
    fatigue_seconds: float = 10.0
    disagreement_gap: float = 0.5
    disagreement_min: int = 3
    """Decisions each of two approvers made on similar requests before they are compared."""
    repeated_edit_min: int = 5
    categorical_limit: int = 10
    """A text argument with at most this many distinct values (per tool) is a category."""


DEFAULT_SETTINGS = RecommendationSettings()


@dataclass(frozen=True, kw_only=True, slots=True)
class Recommendation:
    kind: RecommendationKind
    subject: str
    suggestion: str
    message: str
    evidence: JsonObject

    def to_json(self) -> JsonObject:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "suggestion": self.suggestion,
            "message": self.message,
            "evidence": self.evidence,
        }


def recommend(
    facts: Sequence[DecisionFact], settings: RecommendationSettings = DEFAULT_SETTINGS
) -> list[Recommendation]:
    """Every recommendation the facts support, by kind then subject."""
    tools = _by(f for f in facts if f.kind == "tool" and f.tool)
    out: list[Recommendation] = []
    for tool, requests in sorted(tools.items()):
        out.extend(_rate_rule(tool, requests, settings))
        out.extend(_calibration(tool, requests, settings))
        out.extend(_repeated_edits(tool, requests, settings))
        out.extend(_disagreements(tool, requests, settings))
    out.extend(_fatigue(facts, settings))
    return sorted(out, key=lambda r: (KINDS.index(r.kind), r.subject))


def _by(facts: Iterable[DecisionFact]) -> dict[str, list[DecisionFact]]:
    groups: dict[str, list[DecisionFact]] = {}
    for fact in facts:
        groups.setdefault(fact.tool, []).append(fact)
    return groups


def _decided(facts: Iterable[DecisionFact]) -> list[DecisionFact]:
    return [f for f in facts if f.status in ("approved", "edited", "rejected")]


def _counts(facts: Sequence[DecisionFact]) -> JsonObject:
    status = Counter(f.status for f in facts)
    times = [t for f in facts if (t := f.decision_s) is not None]
    return {
        "decisions": len(facts),
        "approved": status["approved"],
        "edited": status["edited"],
        "rejected": status["rejected"],
        "approval_rate": _rate(status["approved"], len(facts)),
        "median_decision_s": _round(percentile(times, 0.5)),
        "first": min(f.raised_at for f in facts).isoformat() if facts else None,
        "last": max(f.raised_at for f in facts).isoformat() if facts else None,
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _samples(facts: Iterable[DecisionFact]) -> list[Json]:
    return [f.interrupt_id for f in list(facts)[:_SAMPLES]]


# -- relax / tighten ------------------------------------------------------------------------------


def _rate_rule(
    tool: str, requests: Sequence[DecisionFact], s: RecommendationSettings
) -> list[Recommendation]:
    decided = _decided(requests)
    if len(decided) < s.min_decisions:
        return []
    approved = sum(f.status == "approved" for f in decided)
    rate = approved / len(decided)
    evidence = _counts(decided)
    evidence["risks"] = dict(Counter(f.risk for f in decided))
    policies: list[Json] = [p for p in sorted({f.policy for f in decided})]
    evidence["policies"] = policies
    if rate >= s.auto_rate:
        low = all(f.risk == "low" for f in decided)
        action = "AUTO" if low else "NOTIFY"
        evidence["exceptions"] = _samples(f for f in decided if f.status != "approved")
        return [
            Recommendation(
                kind="relax",
                subject=f"tool {tool}",
                suggestion=action,
                message=f"people approved {approved} of {len(decided)} {tool} requests "
                f"({rate:.0%}): candidate for {action}"
                + ("" if low else " (not all low risk, so people still hear of each call)"),
                evidence=evidence,
            )
        ]
    if rate <= s.tighten_rate:
        reasons = Counter(f.reason or "" for f in decided if f.status == "rejected")
        evidence["top_rejection_reasons"] = [
            {"reason": reason, "count": count} for reason, count in reasons.most_common(3)
        ]
        evidence["samples"] = _samples(f for f in decided if f.status != "approved")
        return [
            Recommendation(
                kind="tighten",
                subject=f"tool {tool}",
                suggestion="tighten",
                message=f"people approved only {approved} of {len(decided)} {tool} requests "
                f"({rate:.0%}): tighten the rule or fix the tool or the agent's prompt",
                evidence=evidence,
            )
        ]
    return []


# -- confidence calibration -----------------------------------------------------------------------


def _calibration(
    tool: str, requests: Sequence[DecisionFact], s: RecommendationSettings
) -> list[Recommendation]:
    scored = sorted(
        (f for f in _decided(requests) if f.confidence is not None),
        key=lambda f: f.confidence or 0.0,
        reverse=True,
    )
    best: tuple[float, int, int] | None = None  # threshold, decisions above, approved above
    approved = 0
    for index, fact in enumerate(scored):
        approved += fact.status == "approved"
        count = index + 1
        assert fact.confidence is not None
        if index + 1 < len(scored) and scored[index + 1].confidence == fact.confidence:
            continue  # a threshold includes every decision at its value
        if count >= s.min_decisions and approved / count >= s.calibration_rate:
            best = (fact.confidence, count, approved)
    if best is None:
        return []
    threshold, above, approved_above = best
    below = scored[above:]
    if not below:
        return []  # everything is above: that is a relax recommendation, not a threshold
    approved_below = sum(f.status == "approved" for f in below)
    evidence: JsonObject = {
        "threshold": threshold,
        "decisions_above": above,
        "approved_above": approved_above,
        "approval_rate_above": _rate(approved_above, above),
        "decisions_below": len(below),
        "approved_below": approved_below,
        "approval_rate_below": _rate(approved_below, len(below)),
    }
    return [
        Recommendation(
            kind="calibrate",
            subject=f"tool {tool}",
            suggestion=f"auto at confidence >= {threshold:g}",
            message=f"{tool}: at confidence {threshold:g} or more people approved "
            f"{approved_above} of {above} ({approved_above / above:.0%}); below it "
            f"{approved_below} of {len(below)}",
            evidence=evidence,
        )
    ]


# -- reviewer fatigue -----------------------------------------------------------------------------


def _fatigue(facts: Sequence[DecisionFact], s: RecommendationSettings) -> list[Recommendation]:
    by_approver: dict[str, list[DecisionFact]] = {}
    for fact in _decided(facts):
        if fact.decided_by:
            by_approver.setdefault(fact.decided_by, []).append(fact)
    out = []
    for approver, decided in sorted(by_approver.items()):
        if len(decided) < s.min_decisions:
            continue
        approved = sum(f.status == "approved" for f in decided)
        times = [t for f in decided if (t := f.decision_s) is not None]
        median = percentile(times, 0.5)
        if approved / len(decided) < s.fatigue_rate or median is None:
            continue
        if median > s.fatigue_seconds:
            continue
        evidence = _counts(decided)
        evidence["p90_decision_s"] = _round(percentile(times, 0.9))
        evidence["high_risk_approved"] = sum(
            f.status == "approved" and f.risk in ("high", "critical") for f in decided
        )
        out.append(
            Recommendation(
                kind="fatigue",
                subject=f"approver {approver}",
                suggestion="review",
                message=f"{approver} approved {approved} of {len(decided)} requests with a "
                f"median of {median:.1f}s: rubber-stamping? Relax the rules they see "
                "or rotate reviewers",
                evidence=evidence,
            )
        )
    return out


# -- disagreement on similar requests -------------------------------------------------------------


def similarity(
    requests: Sequence[DecisionFact], limit: int
) -> dict[str, str]:  # interrupt_id -> key
    """Similar requests share a key: numbers by their leading digit and magnitude (2400 and
    2900 are alike, 240 is not), booleans as they are, text when the argument takes few
    values across the tool's requests (a category, not an id); anything else is ignored."""
    values: dict[str, set[str]] = {}
    for fact in requests:
        for name, value in (fact.args or {}).items():
            if isinstance(value, str):
                values.setdefault(name, set()).add(value)
    categorical = {name for name, seen in values.items() if len(seen) <= limit}
    keys = {}
    for fact in requests:
        parts = []
        for name, value in sorted((fact.args or {}).items()):
            if isinstance(value, bool):
                parts.append(f"{name}={str(value).lower()}")
            elif isinstance(value, int | float):
                parts.append(f"{name}~{_bucket(float(value))}")
            elif isinstance(value, str) and name in categorical:
                parts.append(f"{name}={value}")
        keys[fact.interrupt_id] = ", ".join(parts) or "(any arguments)"
    return keys


def _bucket(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    scale = 10 ** math.floor(math.log10(abs(value)))
    low = math.floor(abs(value) / scale) * scale
    sign = "-" if value < 0 else ""
    return f"{sign}[{low:g},{low + scale:g})"


def _disagreements(
    tool: str, requests: Sequence[DecisionFact], s: RecommendationSettings
) -> list[Recommendation]:
    decided = [f for f in _decided(requests) if f.decided_by]
    keys = similarity(decided, s.categorical_limit)
    groups: dict[str, list[DecisionFact]] = {}
    for fact in decided:
        groups.setdefault(keys[fact.interrupt_id], []).append(fact)
    out = []
    for key, group in sorted(groups.items()):
        rates: dict[str, tuple[int, int]] = {}
        for fact in group:
            count, approved = rates.get(fact.decided_by or "", (0, 0))
            rates[fact.decided_by or ""] = (count + 1, approved + (fact.status == "approved"))
        compared = {a: (n, ok) for a, (n, ok) in rates.items() if n >= s.disagreement_min}
        if len(compared) < 2:
            continue
        lenient = max(compared, key=lambda a: (compared[a][1] / compared[a][0], a))
        strict = min(compared, key=lambda a: (compared[a][1] / compared[a][0], a))
        gap = (
            compared[lenient][1] / compared[lenient][0] - compared[strict][1] / compared[strict][0]
        )
        if gap < s.disagreement_gap:
            continue
        evidence: JsonObject = {
            "similar": key,
            "requests": len(group),
            "approvers": {
                a: {"decisions": n, "approved": ok, "approval_rate": _rate(ok, n)}
                for a, (n, ok) in sorted(compared.items())
            },
            "samples": _samples(group),
        }
        out.append(
            Recommendation(
                kind="disagreement",
                subject=f"tool {tool} ({key})",
                suggestion="align",
                message=f"on similar {tool} requests ({key}) {lenient} approves "
                f"{compared[lenient][1]} of {compared[lenient][0]} and {strict} "
                f"{compared[strict][1]} of {compared[strict][0]}: agree on a rule",
                evidence=evidence,
            )
        )
    return out


# -- the same edit again and again ----------------------------------------------------------------


def edit_signature(requested: JsonObject | None, edited: JsonObject) -> str:
    """What an edit did, without what it was done to: `amount→500`, `+note`, `-cc`."""
    diff = edit_diff(requested, edited)
    parts = []
    for name, change in sorted(_object(diff.get("changed")).items()):
        to = _object(change).get("to")
        shown = canonical_json(to) if not isinstance(to, dict | list) else "…"
        parts.append(f"{name}→{shown}" if len(shown) <= 40 else f"{name} changed")
    parts.extend(f"+{name}" for name in sorted(_object(diff.get("added"))))
    parts.extend(f"-{name}" for name in sorted(_object(diff.get("removed"))))
    return ", ".join(parts)


def _object(value: Json) -> JsonObject:
    return value if isinstance(value, dict) else {}


def _repeated_edits(
    tool: str, requests: Sequence[DecisionFact], s: RecommendationSettings
) -> list[Recommendation]:
    edits = [f for f in requests if f.status == "edited" and f.edited_args is not None]
    signatures: dict[str, list[DecisionFact]] = {}
    for fact in edits:
        assert fact.edited_args is not None
        signature = edit_signature(fact.args, fact.edited_args)
        if signature:
            signatures.setdefault(signature, []).append(fact)
    out = []
    for signature, same in sorted(signatures.items()):
        if len(same) < s.repeated_edit_min:
            continue
        evidence: JsonObject = {
            "edit": signature,
            "times": len(same),
            "share_of_edits": _rate(len(same), len(edits)),
            "editors": dict(Counter(f.decided_by or "" for f in same)),
            "samples": _samples(same),
        }
        out.append(
            Recommendation(
                kind="repeated_edit",
                subject=f"tool {tool} ({signature})",
                suggestion="fix upstream",
                message=f"people made the same edit to {tool} ({signature}) {len(same)} times: "
                "make it the default or fix the agent",
                evidence=evidence,
            )
        )
    return out
