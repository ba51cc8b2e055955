"""The `cs_subject_keys` guard holds against any client of the table, not only the adapter:
someone with SQL access cannot bring an erased key back, change a key, delete a tombstone
or truncate the table."""

from __future__ import annotations

import os

import asyncpg  # noqa: TID251  (the insider works below our API, with raw SQL)
import pytest

from engine.log.postgres_subject_keys import PostgresSubjectKeys

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("UPDATE cs_subject_keys SET key = $1 WHERE subject = 'gone'", "never comes back"),
        ("UPDATE cs_subject_keys SET key = $1 WHERE subject = 'kept'", "never changed"),
        (
            "DELETE FROM cs_subject_keys WHERE subject = 'gone' AND $1::bytea IS NOT NULL",
            "never deleted",
        ),
    ],
)
async def test_the_table_refuses_what_erasure_forbids(
    pg_url: str, fresh_prefix: str, statement: str, refusal: str
) -> None:
    store = PostgresSubjectKeys(pg_url, schema=fresh_prefix)
    await store.start()
    try:
        await store.create("kept", os.urandom(32))
        await store.create("gone", os.urandom(32))
        await store.erase("gone")
        conn = await asyncpg.connect(pg_url, server_settings={"search_path": fresh_prefix})
        try:
            with pytest.raises(asyncpg.PostgresError, match=refusal):
                await conn.execute(statement, os.urandom(32))
            with pytest.raises(asyncpg.PostgresError, match="never truncated"):
                await conn.execute("TRUNCATE cs_subject_keys")
        finally:
            await conn.close()
        assert (await store.fetch(["gone"]))["gone"] == b""
    finally:
        await store.close()
