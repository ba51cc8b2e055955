"""The PostgreSQL store's schema: migration, the live pointer and the switch (I/O).

A deployment has one home schema; its `cs_projection_live` row names the schema holding a
projection's live copy (none: the home schema itself), and its `cs_v_*` views read that
schema's, so other systems never follow the pointer by hand. The pointer is read back from
the database and quoted into SQL, so it is checked to be a plain identifier first: a row
someone else wrote there is refused (`CorruptRow`), never executed.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

from projections.errors import CorruptRow
from projections.store_db import StorePart, schema_name

VIEWS = (
    "cs_v_inbox",
    "cs_v_audit",
    "cs_v_gates",
    "cs_v_decisions",
    "cs_v_stat_facts",
    "cs_v_stats",
    "cs_v_calls",
)
"""The views of the SQL contract, in dependency order."""

_MIGRATION_LOCK = 0x63735F70726F6A  # any constant shared by every projector process
_SCRIPTS = ("schema.sql", "views.sql")


class PostgresSchema(StorePart):
    """Migration and the live pointer of one home schema."""

    async def migrate(self) -> None:
        """Create the schema, the tables and the views if missing; safe from many processes.

        The views (`views.sql`, the SQL contract) are the schema's own, unless this is a home
        schema whose pointer names another live schema: then that schema is migrated too and
        these views read through to it.
        """
        async with self._db.transaction("migrate") as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            changed = await _migrate_schema(conn, self.schema)
            live = await live_pointer(conn, "core")
            if live is not None and live != self.schema:
                changed = await _migrate_schema(conn, live) or changed
                await conn.execute(f'SET LOCAL search_path TO "{self.schema}"')
                if changed:
                    await point_views(conn, live)

    async def live_schema(self, projection: str = "core") -> str:
        """The schema holding the live copy of `projection`, by this (home) schema's
        pointer: this schema itself when there is none."""
        async with self._db.connection("read") as conn:
            return await live_pointer(conn, projection) or self.schema

    async def switch_live(self, projection: str, schema: str) -> str:
        """Point `projection` (and this schema's cs_v_* views) at `schema`, atomically; the
        schema that was live before."""
        schema_name(schema)
        async with self._db.transaction("switch") as conn:
            exists = "SELECT to_regclass(format('%I.cs_v_stats', $1::text))"
            if await conn.fetchval(exists, schema) is None:
                raise ValueError(f"schema {schema} holds no projection copy")
            return await switch(conn, projection, schema)

    async def drop_schema(self, schema: str) -> None:
        """Drop a copy that is no longer live (never this schema, never the live one)."""
        if schema == self.schema or schema == await self.live_schema():
            raise ValueError(f"schema {schema} is in use; it cannot be dropped")
        schema_name(schema)
        await self._db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _migrate_schema(conn: Any, schema: str) -> bool:
    """Run the scripts in `schema` unless it is up to date with them (their digest is
    stored there): a migration takes strong locks, so a current schema is not touched.
    True if the scripts ran."""
    scripts = [resources.files("projections").joinpath(n).read_text("utf-8") for n in _SCRIPTS]
    digest = hashlib.sha256("\n".join(scripts).encode()).hexdigest()
    known = "SELECT to_regclass(format('%I.cs_projection_schema', $1::text)) IS NOT NULL"
    if await conn.fetchval(known, schema):
        stored = await conn.fetchval(
            f'SELECT digest FROM "{schema}".cs_projection_schema WHERE id = 1'
        )
        if stored == digest:
            return False
    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    await conn.execute(f'SET LOCAL search_path TO "{schema}"')
    for script in scripts:
        await conn.execute(script)
    await conn.execute(
        "INSERT INTO cs_projection_schema (id, digest) VALUES (1, $1)"
        " ON CONFLICT (id) DO UPDATE SET digest = EXCLUDED.digest, migrated_at = now()",
        digest,
    )
    return True


async def live_pointer(conn: Any, projection: str) -> str | None:
    """The schema the pointer names, or None when there is none (the home schema)."""
    value = await conn.fetchval(
        "SELECT schema_name FROM cs_projection_live WHERE projection = $1", projection
    )
    if value is None:
        return None
    try:
        return schema_name(value, f"cs_projection_live names for {projection} a schema")
    except ValueError as error:
        raise CorruptRow(
            f"{error}; countersign never writes such a row, so it is not followed. Delete it"
            f" (DELETE FROM cs_projection_live WHERE projection = '{projection}'), then point"
            " the live copy where it belongs with `countersign projections switch SCHEMA`"
        ) from error


async def point_views(conn: Any, target: str) -> None:
    """Make the current schema's contract views read `target`'s (or be its own again)."""
    current = await conn.fetchval("SELECT current_schema()")
    if target == current:
        await conn.execute(resources.files("projections").joinpath("views.sql").read_text("utf-8"))
        return
    for view in VIEWS:
        await conn.execute(f'CREATE OR REPLACE VIEW {view} AS SELECT * FROM "{target}".{view}')


async def switch(conn: Any, projection: str, target: str) -> str:
    """Point `projection` at `target` and its views with it, in the caller's transaction;
    the schema that was live before (the home schema when there was no pointer)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('cs_projection_live'))")
    home = str(await conn.fetchval("SELECT current_schema()"))
    before = await live_pointer(conn, projection) or home
    await conn.execute(
        "INSERT INTO cs_projection_live (projection, schema_name, previous, switched_at)"
        " VALUES ($1, $2, $3, now()) ON CONFLICT (projection) DO UPDATE"
        " SET schema_name = EXCLUDED.schema_name, previous = EXCLUDED.previous,"
        " switched_at = EXCLUDED.switched_at",
        projection,
        target,
        before,
    )
    await point_views(conn, target)
    return before
