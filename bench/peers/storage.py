"""What each side has stored, read from its database or its broker's disk (I/O).

- A PostgreSQL database: the size of every table in its `public` schema (heap, indexes,
  TOAST: `pg_total_relation_size`), and the bytes of chosen rows (`pg_column_size`, as stored:
  after TOAST compression, without page or index overhead).
- The local broker: the bytes of the segment files (`*.log`) of a topic prefix's partitions on
  one broker's disk (the sparse, preallocated `.index` files are not counted).
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

ALL_TABLES = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
"""


async def database_bytes(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval(ALL_TABLES))
    finally:
        await connection.close()


async def row_bytes(url: str, tables: tuple[str, ...], where: str = "", *args: str) -> int:
    """Bytes of the rows of `tables` (a fixed list of ours: not user input) matching `where`."""
    connection = await asyncpg.connect(url)
    try:
        total = 0
        for table in tables:
            query = f"SELECT coalesce(sum(pg_column_size(t.*)), 0)::bigint FROM {table} t {where}"
            total += int(await connection.fetchval(query, *args))
        return total
    finally:
        await connection.close()


def segment_bytes(data_dir: Path, topic_glob: str) -> int:
    """Bytes of the segment files of the partitions whose folders match `topic_glob`."""
    return sum(f.stat().st_size for d in data_dir.glob(topic_glob) for f in d.glob("*.log"))


async def server_settings(url: str) -> str:
    """The server's version and what a commit waits for (printed beside the figures)."""
    connection = await asyncpg.connect(url)
    try:
        shown = [
            f"{name} {await connection.fetchval(f'SHOW {name}')}"
            for name in ("server_version", "fsync", "synchronous_commit")
        ]
        return "PostgreSQL: " + ", ".join(shown)
    finally:
        await connection.close()
