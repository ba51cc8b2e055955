"""Personal values in what the CLI shows: opened with their subject's key, or `erased` (I/O).

The log and the projections hold personal values sealed (docs/erasure.md); the CLI opens
them for the operator with the keys that still exist. A value whose subject was erased reads
`erased`; with the in-memory log (no key store) a sealed value stays as it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

from countersign import bootstrap
from countersign.settings import Settings
from engine.privacy.events import open_history, subjects_in
from engine.privacy.keys import ERASED_KEY, SubjectKeys
from engine.privacy.sealing import open_json, sealed_in
from events.envelope import EventEnvelope
from events.json import Json
from projections.card import ReviewCard
from projections.rows import AuditRow

__all__ = ["Opener", "opener"]


class Opener:
    """Opens sealed values with the keys that exist. It connects to the key store only when
    something sealed is to be opened (replaying a file needs no server otherwise)."""

    def __init__(self, connect: Callable[[], Awaitable[SubjectKeys | None]]) -> None:
        self._connect = connect
        self._connected = False
        self._store: SubjectKeys | None = None
        self._keys: dict[str, bytes] = {}

    async def _load(self, subjects: set[str]) -> bool:
        """Whether the values can be opened (there is a key store; none with the in-memory
        log, whose keys died with its process: its sealed values are shown as they are)."""
        if not subjects:
            return False
        if not self._connected:
            self._store, self._connected = await self._connect(), True
        wanted = subjects - set(self._keys)
        if self._store is not None and wanted:
            self._keys.update(await self._store.fetch(sorted(wanted)))
        return self._store is not None

    def _key(self, subject: str) -> bytes | None:
        key = self._keys.get(subject)
        return None if key in (None, ERASED_KEY) else key

    async def history(
        self, events: Sequence[EventEnvelope], *, show: bool = False
    ) -> list[EventEnvelope]:
        """For replay (`show=False`: erased values as the agent reads them) or people."""
        if not await self._load(subjects_in(e.payload for e in events)):
            return list(events)
        return open_history(events, self._key, show=show)

    async def audit(self, rows: Sequence[AuditRow], *, show: bool) -> list[AuditRow]:
        values = (v for r in rows for v in (r.args, r.edited_args, r.diff))
        if not await self._load(_subjects(values)):
            return list(rows)
        return [self._row(row, show) for row in rows]

    async def card(self, card: ReviewCard) -> ReviewCard:
        """The card with its request's (and previous proposal's) arguments opened: what a
        reviewer reads, and what an edit (`decide --set`) starts from."""
        request = card.request
        if not await self._load(_subjects([request.args, card.previous])):
            return card
        args = open_json(request.args, card.row.run_id, self._key, show=False)
        previous = open_json(card.previous, card.row.run_id, self._key, show=False)
        return dataclasses.replace(
            card,
            request=dataclasses.replace(
                request, args=args if isinstance(args, dict) else request.args
            ),
            previous=previous if isinstance(previous, dict) else card.previous,
        )

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
    async with contextlib.AsyncExitStack() as stack:

        async def connect() -> SubjectKeys | None:
            return await stack.enter_async_context(bootstrap.subject_keys(settings))

        yield Opener(connect)
