"""PostgreSQL read models of the runs topic: the pure fold, the store, the projector, queries.

store = await ProjectionStore.connect(url)
await store.migrate()
projector = Projector(log, store, topics.runs, group="countersign-projections", codec=Codec())
await projector.run(stop)
run = await Queries(store).get_run(run_id)
mine = await Insights(store).inbox(principal="alice", roles=("support-lead",))
verdicts = await verify(log, topics.runs, store, Codec(), [run_id])

A deployment's projectors and queries follow the live copy after a rebuild:
`LiveStore.connect(url)` (for a Projector) and `connect_live(url)` (for queries).
"""

from projections.batch import Applied, BatchItem, LoggedEvent, Unusable
from projections.chain import Break
from projections.errors import ProjectionsError, StoreUnavailable, UnstorableBatch
from projections.fold import Folded, RowChanges, RunView, edit_diff, event_row, fold, project
from projections.inbox import InboxItem, SlaState, TeamOverdue, sla_state
from projections.insights import Insights
from projections.live import LiveStore, connect_live
from projections.queries import Queries, ReadModel
from projections.rebuild import Rebuilt, rebuild
from projections.recommend import Recommendation, RecommendationSettings, recommend
from projections.rows import (
    AUDIT_ACTIONS,
    FINISHED_STATUSES,
    RUN_STATUSES,
    AuditAction,
    AuditRow,
    ErrorRow,
    EventRow,
    InterruptRow,
    InterruptStatus,
    RunRow,
    RunStatus,
    StoredPosition,
    TimelineEntry,
)
from projections.runner import Backoff, ProjectionWriter, Projector, Relocatable
from projections.stats import DIMENSIONS, DecisionFact, Dimension, GateFact, StatRow, tally
from projections.status import PartitionStatus, ProjectionStatus, projection_status
from projections.store import ProjectionStore
from projections.verify import RunVerdict, verify
from projections.whatif import CallFact, Policy, PolicyError, WhatIf, what_if

__all__ = [
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
    "DecisionFact",
    "Dimension",
    "ErrorRow",
    "EventRow",
    "Folded",
    "GateFact",
    "InboxItem",
    "Insights",
    "InterruptRow",
    "InterruptStatus",
    "LiveStore",
    "LoggedEvent",
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
