"""Errors of the projections package.

ProjectionsError
├── StoreUnavailable     retry: PostgreSQL could not be reached or the transaction did not
│                        commit (connection lost, serialization failure, server shutting down)
└── UnstorableBatch      poison: some event of the batch cannot be stored (a value PostgreSQL
                         refuses); split the batch until the one event is found, then record
                         it in `cs_projection_errors` instead
"""

from __future__ import annotations


class ProjectionsError(Exception):
    """Base class for errors raised by the projections package."""


class StoreUnavailable(ProjectionsError):
    """Transient: nothing was written; apply the same batch again after a pause."""


class UnstorableBatch(ProjectionsError):
    """Poison: nothing was written; the data of the batch is what PostgreSQL refused."""
