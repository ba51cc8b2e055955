"""Errors of the projections package.

ProjectionsError
├── StoreUnavailable     retry: PostgreSQL could not be reached or the transaction did not
│                        commit (connection lost, serialization failure, server shutting down)
├── UnstorableBatch      poison: some event of the batch cannot be stored (a value PostgreSQL
│                        refuses); split the batch until the one event is found, then record
│                        it in `cs_projection_errors` instead
├── ForeignLog           terminal: the stored positions came from another log (or run past
│                        its end); rebuild the projection from this log, or use another schema
├── CorruptRow           terminal: a stored row breaks its type (a status no code writes, a
│                        schema name that is not an identifier): it was written by someone
│                        other than the projector; `countersign verify`, then rebuild
└── NewerRelease         terminal for this projector: a newer release of Countersign wrote
                         records it cannot read (a rolling upgrade): run the newer release
"""

from __future__ import annotations


class ProjectionsError(Exception):
    """Base class for errors raised by the projections package."""


class StoreUnavailable(ProjectionsError):
    """Transient: nothing was written; apply the same batch again after a pause."""


class UnstorableBatch(ProjectionsError):
    """Poison: nothing was written; the data of the batch is what PostgreSQL refused."""


class ForeignLog(ProjectionsError):
    """The projection's positions do not describe the log it was pointed at: projecting on
    would skip or misplace events. The message says what to do."""


class CorruptRow(ProjectionsError):
    """A row read back from the database is not one the projector could have written."""


class NewerRelease(ProjectionsError):
    """Records of a newer release: not corruption, nothing to record as an error. The
    projector stops (its positions stay where they were) so a newer one carries on."""
