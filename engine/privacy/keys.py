"""The subject-key store (a port), its in-memory twin, and the worker's cache of it (I/O:
fresh keys are random, the cache has a clock).

A subject's key is created once (the first writer wins; every later `create` returns the
same key, so two workers sealing for one subject at once agree) and destroyed once: after
`erase` the subject has a tombstone, and neither `create` nor anything else brings a key
back. Adapters: `MemorySubjectKeys` here, `engine.log.postgres_subject_keys` (the
`cs_subject_keys` table, guarded by triggers). One contract suite runs against both
(tests/contracts/test_subject_keys_contract.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from engine.privacy.sealing import KEY_BYTES

__all__ = ["ERASED_KEY", "Keyring", "MemorySubjectKeys", "SubjectKeys", "new_key"]

ERASED_KEY = b""
"""What a store answers for an erased subject (never a usable key)."""

MAX_SUBJECT_CHARS = 256


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def check_subject(subject: str) -> str:
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_CHARS:
        raise ValueError(f"a data subject is 1 to {MAX_SUBJECT_CHARS} characters")
    return subject


class SubjectKeys(Protocol):
    async def create(self, subject: str, key: bytes) -> bytes:
        """The subject's key: `key` if it had none, else the one it has; `ERASED_KEY` for
        an erased subject (nothing is created)."""
        ...

    async def fetch(self, subjects: Iterable[str]) -> dict[str, bytes]:
        """The keys of the subjects that have one or were erased (`ERASED_KEY`); a subject
        never seen is absent."""
        ...

    async def erase(self, subject: str) -> bool:
        """Destroy the subject's key for good (a tombstone stays); False if it was erased
        already."""
        ...


class MemorySubjectKeys:
    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}

    async def create(self, subject: str, key: bytes) -> bytes:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a subject key is {KEY_BYTES} bytes")
        return self._keys.setdefault(check_subject(subject), key)

    async def fetch(self, subjects: Iterable[str]) -> dict[str, bytes]:
        return {s: self._keys[s] for s in subjects if s in self._keys}

    async def erase(self, subject: str) -> bool:
        before = self._keys.get(check_subject(subject))
        self._keys[subject] = ERASED_KEY
        return before != ERASED_KEY


class Keyring:
    """A worker's cache of subject keys, so that sealing and opening stay synchronous:
    `ensure` (create) and `load` (fetch) fill it before events are written or replayed. An
    entry older than `ttl_s` is fetched again by the next `ensure`/`load`: an erasure reaches
    a running worker within that time."""

    def __init__(
        self,
        store: SubjectKeys,
        *,
        ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        make_key: Callable[[], bytes] = new_key,
        max_entries: int = 100_000,
    ) -> None:
        self._max_entries = max_entries
        self.store = store
        self._ttl_s = ttl_s
        self._clock = clock
        self._make_key = make_key
        self._cache: dict[str, tuple[bytes, float]] = {}

    def key(self, subject: str) -> bytes | None:
        """The cached key; `ERASED_KEY` for an erased subject; None: not loaded."""
        entry = self._cache.get(subject)
        return None if entry is None else entry[0]

    def _stale(self, subjects: Iterable[str]) -> list[str]:
        now = self._clock()
        return sorted(
            {s for s in subjects if s not in self._cache or now - self._cache[s][1] > self._ttl_s}
        )

    def _keep(self, keys: Mapping[str, bytes]) -> None:
        now = self._clock()
        if len(self._cache) + len(keys) > self._max_entries:  # bounded: stale ones go first
            self._cache = {s: e for s, e in self._cache.items() if now - e[1] <= self._ttl_s}
        self._cache.update({s: (k, now) for s, k in keys.items()})

    async def load(self, subjects: Iterable[str]) -> None:
        """Fetch the keys of subjects to open (one without a key opens nothing)."""
        stale = self._stale(subjects)
        if stale:
            self._keep(await self.store.fetch(stale))

    async def ensure(self, subjects: Iterable[str]) -> None:
        """Create (once, first writer wins) the keys of subjects about to be sealed."""
        for subject in self._stale(subjects):
            self._keep({subject: await self.store.create(subject, self._make_key())})
