"""The subject-key store in PostgreSQL: the `cs_subject_keys` table (I/O).

One row per data subject: its 32-byte key, or, once erased, no key and the time of erasure
(a tombstone). Triggers make the promises of `engine.privacy.keys.SubjectKeys` hold against
any client of the table, not only this adapter: a key is never changed, an erased key never
comes back, and rows are never deleted (deleting a tombstone would let a new key be made
for a subject who asked to be forgotten). `create` is one `INSERT … ON CONFLICT DO NOTHING`
and a read, so two workers creating one subject's key at once get the same key. `erase`
also vacuums the table, so the destroyed key's old row version does not linger in the
table's pages (backups and WAL archives are the operator's: docs/erasure.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg

from engine.errors import ConfigurationError
from engine.privacy.keys import ERASED_KEY, check_subject
from engine.privacy.sealing import KEY_BYTES

__all__ = ["DDL", "PostgresSubjectKeys"]

DDL = """
CREATE TABLE IF NOT EXISTS cs_subject_keys (
    subject text PRIMARY KEY CHECK (length(subject) BETWEEN 1 AND 256),
    key bytea CHECK (key IS NULL OR length(key) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    erased_at timestamptz,
    CHECK ((key IS NULL) = (erased_at IS NOT NULL))
);
CREATE OR REPLACE FUNCTION cs_subject_keys_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'cs_subject_keys: rows are never deleted (erase a subject instead)';
    END IF;
    IF OLD.key IS NULL AND NEW.key IS NOT NULL THEN
        RAISE EXCEPTION 'cs_subject_keys: an erased key never comes back (%)', OLD.subject;
    END IF;
    IF NEW.key IS NOT NULL AND NEW.key IS DISTINCT FROM OLD.key THEN
        RAISE EXCEPTION 'cs_subject_keys: a subject key is never changed (%)', OLD.subject;
    END IF;
    IF NEW.subject IS DISTINCT FROM OLD.subject THEN
        RAISE EXCEPTION 'cs_subject_keys: a subject is never renamed';
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS cs_subject_keys_guard ON cs_subject_keys;
CREATE TRIGGER cs_subject_keys_guard BEFORE UPDATE OR DELETE ON cs_subject_keys
    FOR EACH ROW EXECUTE FUNCTION cs_subject_keys_guard();
CREATE OR REPLACE FUNCTION cs_subject_keys_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'cs_subject_keys: the table is never truncated';
END $$;
DROP TRIGGER IF EXISTS cs_subject_keys_no_truncate ON cs_subject_keys;
CREATE TRIGGER cs_subject_keys_no_truncate BEFORE TRUNCATE ON cs_subject_keys
    FOR EACH STATEMENT EXECUTE FUNCTION cs_subject_keys_no_truncate();
"""

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('cs_subject_keys ddl'))"
_CREATE = """
INSERT INTO cs_subject_keys (subject, key) VALUES ($1, $2) ON CONFLICT (subject) DO NOTHING
"""
_FETCH = "SELECT subject, key FROM cs_subject_keys WHERE subject = ANY($1::text[])"
_ERASE = """
INSERT INTO cs_subject_keys AS k (subject, key, erased_at) VALUES ($1, NULL, now())
ON CONFLICT (subject) DO UPDATE SET key = NULL, erased_at = coalesce(k.erased_at, now())
"""
_WAS_ERASED = "SELECT key IS NULL FROM cs_subject_keys WHERE subject = $1"


class PostgresSubjectKeys:
    """`SubjectKeys` on a PostgreSQL database (the embedded one, or the projections')."""

    def __init__(self, url: str, *, schema: str = "public") -> None:
        if not schema.isidentifier() or schema != schema.lower():
            raise ConfigurationError(f"schema {schema!r} is not a plain lower-case identifier")
        self._url = url
        self._schema = schema
        self._pool: Any = None

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._url, min_size=1, max_size=2, server_settings={"search_path": self._schema}
        )
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_LOCK)
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            await conn.execute(DDL)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def create(self, subject: str, key: bytes) -> bytes:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a subject key is {KEY_BYTES} bytes")
        async with self._pool.acquire() as conn:
            await conn.execute(_CREATE, check_subject(subject), key)
            found = await conn.fetchval(
                "SELECT key FROM cs_subject_keys WHERE subject = $1", subject
            )
        return ERASED_KEY if found is None else bytes(found)

    async def fetch(self, subjects: Iterable[str]) -> dict[str, bytes]:
        wanted = [check_subject(s) for s in subjects]
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_FETCH, wanted)
        return {
            str(row["subject"]): ERASED_KEY if row["key"] is None else bytes(row["key"])
            for row in rows
        }

    async def erase(self, subject: str) -> bool:
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                before = await conn.fetchval(_WAS_ERASED, check_subject(subject))
                await conn.execute(_ERASE, subject)
            await conn.execute("VACUUM cs_subject_keys")  # the dead row version held the key
        return before is not True
