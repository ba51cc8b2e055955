"""The subject-key store's contract: the PostgreSQL table and its in-memory twin pass these.

A key is created once (the first writer wins, also when two race), read back as created,
destroyed for good by `erase` (a tombstone stays: no `create` makes a new key), and a
subject is bounded before it reaches the store.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable

import pytest

from engine.log.postgres_subject_keys import PostgresSubjectKeys
from engine.privacy.keys import ERASED_KEY, Keyring, MemorySubjectKeys, SubjectKeys


def _memory(request: pytest.FixtureRequest) -> Callable[[], SubjectKeys]:
    return MemorySubjectKeys


def _postgres(request: pytest.FixtureRequest) -> Callable[[], SubjectKeys]:
    url: str = request.getfixturevalue("pg_url")
    schema: str = request.getfixturevalue("fresh_prefix")  # a table of its own per test
    return lambda: PostgresSubjectKeys(url, schema=schema)


@pytest.fixture(
    params=[
        pytest.param(_memory, id="memory"),
        pytest.param(_postgres, id="postgres", marks=pytest.mark.postgres),
    ]
)
def make(request: pytest.FixtureRequest) -> Callable[[], SubjectKeys]:
    factory: Callable[[pytest.FixtureRequest], Callable[[], SubjectKeys]] = request.param
    return factory(request)


@pytest.fixture
async def keys(make: Callable[[], SubjectKeys]) -> AsyncIterator[SubjectKeys]:
    store = make()
    if isinstance(store, PostgresSubjectKeys):
        await store.start()
    try:
        yield store
    finally:
        if isinstance(store, PostgresSubjectKeys):
            await store.close()


def key() -> bytes:
    return os.urandom(32)


async def test_the_first_key_created_is_the_key(keys: SubjectKeys) -> None:
    first, second = key(), key()

    assert await keys.create("cust-1", first) == first
    assert await keys.create("cust-1", second) == first
    assert await keys.fetch(["cust-1", "cust-2"]) == {"cust-1": first}


async def test_two_writers_racing_agree_on_one_key(keys: SubjectKeys) -> None:
    offered = [key() for _ in range(8)]

    got = await asyncio.gather(*(keys.create("cust-race", k) for k in offered))

    assert len(set(got)) == 1
    assert got[0] in offered


async def test_an_erased_key_never_comes_back(keys: SubjectKeys) -> None:
    await keys.create("cust-1", key())
    await keys.create("cust-2", (other := key()))

    assert await keys.erase("cust-1") is True
    assert await keys.erase("cust-1") is False  # erased already: nothing more to destroy
    assert await keys.create("cust-1", key()) == ERASED_KEY
    assert await keys.fetch(["cust-1", "cust-2"]) == {"cust-1": ERASED_KEY, "cust-2": other}


async def test_a_subject_never_seen_can_be_erased_ahead(keys: SubjectKeys) -> None:
    assert await keys.erase("cust-new") is True
    assert await keys.create("cust-new", key()) == ERASED_KEY


@pytest.mark.parametrize("subject", ["", "x" * 257])
async def test_a_subject_out_of_bounds_is_refused(keys: SubjectKeys, subject: str) -> None:
    with pytest.raises(ValueError, match="data subject"):
        await keys.create(subject, key())
    with pytest.raises(ValueError, match="data subject"):
        await keys.erase(subject)


async def test_a_key_of_the_wrong_size_is_refused(keys: SubjectKeys) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        await keys.create("cust-1", b"short")


async def test_a_workers_cache_sees_an_erasure_after_its_ttl(keys: SubjectKeys) -> None:
    now = [0.0]
    ring = Keyring(keys, ttl_s=60.0, clock=lambda: now[0])
    await ring.ensure(["cust-1"])
    made = ring.key("cust-1")
    await keys.erase("cust-1")

    await ring.ensure(["cust-1"])
    cached = ring.key("cust-1")  # within the TTL: the cached key
    now[0] = 61.0
    await ring.ensure(["cust-1"])

    assert made is not None
    assert len(made) == 32
    assert cached == made
    assert ring.key("cust-1") == ERASED_KEY
