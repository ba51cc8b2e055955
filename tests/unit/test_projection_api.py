"""The projections package's public API, pinned: a change here is a change for its users."""

from __future__ import annotations

import inspect

import projections
from projections import (
    Insights,
    LiveStore,
    ProjectionStore,
    Projector,
    Queries,
    fold,
    project,
    rebuild,
    verify,
)


def test_the_public_names_are_pinned() -> None:
    assert sorted(projections.__all__) == sorted(
        [
            "AUDIT_ACTIONS",
            "DIMENSIONS",
            "FINISHED_STATUSES",
            "RUN_STATUSES",
            "Applied",
            "AuditAction",
            "AuditRow",
            "Backoff",
            "BatchItem",
            "Break",
            "CallFact",
            "CorruptRow",
            "DecisionFact",
            "Dimension",
            "ErrorRow",
            "EventRow",
            "Folded",
            "ForeignLog",
            "GateFact",
            "InboxItem",
            "InboxPage",
            "InboxQuery",
            "IndexesAhead",
            "Insights",
            "InterruptRow",
            "InterruptStatus",
            "LiveStore",
            "LogBound",
            "LoggedEvent",
            "MemoryStore",
            "PartitionStatus",
            "Policy",
            "PolicyError",
            "ProjectionStatus",
            "ProjectionStore",
            "ProjectionWriter",
            "ProjectionsError",
            "Projector",
            "Queries",
            "ReadModel",
            "Rebuilt",
            "Recommendation",
            "RecommendationSettings",
            "Relocatable",
            "RowChanges",
            "RunRow",
            "RunStatus",
            "RunVerdict",
            "RunView",
            "SlaState",
            "StatRow",
            "StoreUnavailable",
            "StoredPosition",
            "TeamOverdue",
            "TimelineEntry",
            "UnstorableBatch",
            "Unusable",
            "WhatIf",
            "connect_live",
            "edit_diff",
            "event_row",
            "fold",
            "project",
            "projection_status",
            "rebuild",
            "recommend",
            "sla_state",
            "tally",
            "verify",
            "what_if",
        ]
    )
    assert all(hasattr(projections, name) for name in projections.__all__)


def test_the_main_signatures_are_pinned() -> None:
    def params(function: object) -> list[str]:
        return list(inspect.signature(function).parameters)  # type: ignore[arg-type]

    assert params(Projector) == [
        "log",
        "store",
        "topics_runs",
        "group",
        "codec",
        "name",
        "max_records",
        "poll_timeout_s",
        "backoff",
        "metrics",
    ]
    assert params(ProjectionStore.connect) == ["url", "schema", "min_size", "max_size"]
    assert params(ProjectionStore.apply) == ["self", "projection", "topic", "items", "built"]
    assert params(Queries.audit) == [
        "self",
        "run_id",
        "approver",
        "tool",
        "since",
        "limit",
        "action",
    ]
    assert params(Queries.list_runs) == ["self", "status", "limit"]
    assert params(project) == ["view", "event"]
    assert params(fold) == ["views", "events"]


def test_the_read_side_signatures_are_pinned() -> None:
    def params(function: object) -> list[str]:
        return list(inspect.signature(function).parameters)  # type: ignore[arg-type]

    assert params(Insights) == ["store", "due_soon", "clock"]
    assert params(Insights.inbox) == ["self", "principal", "roles", "overdue", "closed", "limit"]
    assert params(Insights.stats) == ["self", "by"]
    assert params(Insights.recommendations) == ["self", "settings", "since"]
    assert params(Insights.what_if) == ["self", "policy", "since"]
    assert params(verify) == [
        "log", "topic", "store", "codec", "run_ids", "projection", "anchors", "partition_map",
    ]  # fmt: skip
    assert params(LiveStore.connect) == ["url", "home", "projection", "check_every_s", "max_size"]
    assert params(rebuild)[:4] == ["log", "url", "topic", "codec"]
