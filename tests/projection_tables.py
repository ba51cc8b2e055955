"""The projection tables as stored, row by row, to compare a live copy with a rebuild."""

from __future__ import annotations

import asyncpg  # noqa: TID251  (tables are compared row by row, as stored)

TABLES = {
    "cs_events": "run_id, seq",
    "cs_runs": "run_id",
    "cs_interrupts": "interrupt_id",
    "cs_audit": "run_id, seq, action",
    "cs_projection_positions": '"partition"',
    "cs_projection_errors": '"partition", "offset"',
}
IGNORED = {"id", "updated_at", "recorded_at"}  # serial ids and wall-clock times


async def table_rows(url: str, schema: str) -> dict[str, list[dict[str, object]]]:
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        out = {}
        for table, order in TABLES.items():
            rows = await conn.fetch(f"SELECT * FROM {table} ORDER BY {order}")
            out[table] = [{k: v for k, v in r.items() if k not in IGNORED} for r in rows]
        return out
    finally:
        await conn.close()
