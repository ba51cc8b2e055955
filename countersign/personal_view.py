"""Personal values in what the CLI shows: opened with their subject's key, or `erased` (I/O).

The log and the projections hold personal values sealed (docs/erasure.md); the CLI opens
them for the operator with the keys that still exist. A value whose subject was erased reads
`erased`; with the in-memory log (no key store) a sealed value stays as it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterable, Sequence

from countersign import bootstrap
from countersign.settings import Settings
from engine.privacy.events import open_history, subjects_in
from engine.privacy.keys import ERASED_KEY, SubjectKeys
from engine.privacy.sealing import open_json, sealed_in
from events.envelope import EventEnvelope
from events.json import Json
from projections.rows import AuditRow

__all__ = ["Opener", "opener"]


class Opener:
    def __init__(self, store: SubjectKeys | None) -> None:
        self._store = store
        self._keys: dict[str, bytes] = {}

    async def _load(self, subjects: set[str]) -> None:
        wanted = subjects - set(self._keys)
        if self._store is not None and wanted:
            self._keys.update(await self._store.fetch(sorted(wanted)))

    def _key(self, subject: str) -> bytes | None:
        key = self._keys.get(subject)
        return None if key in (None, ERASED_KEY) else key

    async def history(
        self, events: Sequence[EventEnvelope], *, show: bool = False
    ) -> list[EventEnvelope]:
        """For replay (`show=False`: erased values as the agent reads them) or people."""
        if self._store is None:
            return list(events)
        await self._load(subjects_in(e.payload for e in events))
        return open_history(events, self._key, show=show)

    async def audit(self, rows: Sequence[AuditRow], *, show: bool) -> list[AuditRow]:
        if self._store is None:
            return list(rows)
        await self._load(_subjects(v for r in rows for v in (r.args, r.edited_args, r.diff)))
        return [self._row(row, show) for row in rows]

    def _row(self, row: AuditRow, show: bool) -> AuditRow:
        def opened(value: Json) -> Json:
            return open_json(value, row.run_id, self._key, show=show)

        args, edited, diff = opened(row.args), opened(row.edited_args), opened(row.diff)
        return dataclasses.replace(
            row,
            args=args if isinstance(args, dict) else row.args,
            edited_args=edited if isinstance(edited, dict) else row.edited_args,
            diff=diff if isinstance(diff, dict) else row.diff,
        )


def _subjects(values: Iterable[Json]) -> set[str]:
    return {sealed.subject for value in values for sealed in sealed_in(value)}


@contextlib.asynccontextmanager
async def opener(settings: Settings) -> AsyncIterator[Opener]:
    async with bootstrap.subject_keys(settings) as store:
        yield Opener(store)
