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
`MemoryStore` is the in-memory twin of the store's writer and reads (tests, examples).

The face is cheap: every name is imported when first used (module `__getattr__`), so
`import projections` (or the pure fold) loads neither asyncpg nor aiokafka.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from projections.batch import (
        Applied,
        BatchItem,
        LoggedEvent,
        Unusable,
    )
    from projections.chain import Break
    from projections.errors import (
        CorruptRow,
        ForeignLog,
        ProjectionsError,
        StoreUnavailable,
        UnstorableBatch,
    )
    from projections.fold import (
        Folded,
        RowChanges,
        RunView,
        edit_diff,
        event_row,
        fold,
        project,
    )
    from projections.inbox import (
        InboxItem,
        SlaState,
        TeamOverdue,
        sla_state,
    )
    from projections.inbox_query import InboxPage, InboxQuery
    from projections.insights import Insights
    from projections.live import LiveStore, connect_live
    from projections.log_identity import LogBound
    from projections.memory import MemoryStore
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
    from projections.runner import (
        Backoff,
        IndexesAhead,
        ProjectionWriter,
        Projector,
        Relocatable,
    )
    from projections.stats import (
        DIMENSIONS,
        DecisionFact,
        Dimension,
        GateFact,
        StatRow,
        tally,
    )
    from projections.status import PartitionStatus, ProjectionStatus, projection_status
    from projections.store import ProjectionStore
    from projections.verify import RunVerdict, verify
    from projections.whatif import (
        CallFact,
        Policy,
        PolicyError,
        WhatIf,
        what_if,
    )

_EXPORTS = {
    "projections.batch": ("Applied", "BatchItem", "LoggedEvent", "Unusable"),
    "projections.chain": ("Break",),
    "projections.errors": (
        "CorruptRow",
        "ForeignLog",
        "ProjectionsError",
        "StoreUnavailable",
        "UnstorableBatch",
    ),
    "projections.fold": (
        "Folded",
        "RowChanges",
        "RunView",
        "edit_diff",
        "event_row",
        "fold",
        "project",
    ),
    "projections.inbox": ("InboxItem", "SlaState", "TeamOverdue", "sla_state"),
    "projections.inbox_query": ("InboxPage", "InboxQuery"),
    "projections.insights": ("Insights",),
    "projections.live": ("LiveStore", "connect_live"),
    "projections.log_identity": ("LogBound",),
    "projections.memory": ("MemoryStore",),
    "projections.queries": ("Queries", "ReadModel"),
    "projections.rebuild": ("Rebuilt", "rebuild"),
    "projections.recommend": ("Recommendation", "RecommendationSettings", "recommend"),
    "projections.rows": (
        "AUDIT_ACTIONS",
        "FINISHED_STATUSES",
        "RUN_STATUSES",
        "AuditAction",
        "AuditRow",
        "ErrorRow",
        "EventRow",
        "InterruptRow",
        "InterruptStatus",
        "RunRow",
        "RunStatus",
        "StoredPosition",
        "TimelineEntry",
    ),
    "projections.runner": (
        "Backoff",
        "IndexesAhead",
        "ProjectionWriter",
        "Projector",
        "Relocatable",
    ),
    "projections.stats": (
        "DIMENSIONS",
        "DecisionFact",
        "Dimension",
        "GateFact",
        "StatRow",
        "tally",
    ),
    "projections.status": ("PartitionStatus", "ProjectionStatus", "projection_status"),
    "projections.store": ("ProjectionStore",),
    "projections.verify": ("RunVerdict", "verify"),
    "projections.whatif": ("CallFact", "Policy", "PolicyError", "WhatIf", "what_if"),
}
_HOMES = {name: module for module, names in _EXPORTS.items() for name in names}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'projections' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


class _Face(types.ModuleType):
    """`fold`, `rebuild` and `verify` name both a function of the face and the submodule
    defining it. Importing a submodule sets it as an attribute of its package; here the
    function keeps the name (as when the face imported everything eagerly), and the
    submodule stays reachable as `sys.modules["projections.fold"]` and by `from ... import`."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _HOMES.get(name) == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Face
