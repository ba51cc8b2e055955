"""The live pointer, in SQL: which schema holds a projection's live copy, and the switch.

Part of the PostgreSQL adapter: functions of an asyncpg connection whose search_path is the
home schema. The pointer is a row of the home schema's `cs_projection_live`; the home
schema's `cs_v_*` views read the live schema's, so other systems never follow it by hand.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

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


async def live_pointer(conn: Any, projection: str) -> str | None:
    """The schema the pointer names, or None when there is no pointer (the home schema)."""
    value = await conn.fetchval(
        "SELECT schema_name FROM cs_projection_live WHERE projection = $1", projection
    )
    return None if value is None else str(value)


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
