"""The SQL of the PostgreSQL event log: tables, the two append functions, the group statements.

Everything lives in one schema (the connections' `search_path`); every name starts `cs_log_`.
The schema script is idempotent and runs under an advisory lock at `PostgresLog.start()`.

Tables:
- `cs_log_identity`: one row, the log's id (a random UUID drawn when the tables are made).
- `cs_log_partitions`: one row per (topic, partition) with `next_offset`, the offset the next
  record gets. Appends take this row's lock (in (topic, partition) order) and hold it until
  they commit, so appends to one partition commit one after the other, in offset order.
- `cs_log_records`: the records, keyed by (topic, partition, offset); append-only (a trigger
  refuses UPDATE, DELETE and TRUNCATE).
- `cs_log_members`: the live members of each (group, topic), with a lease (`lease_until`,
  on the database clock) that heartbeats extend.
- `cs_log_assignments`: per (group, topic, partition): the owning member, the ownership
  `epoch` (incremented by every acquisition) and the group's committed position.

Two functions make every append one statement, so one round trip and one implicit
transaction: `cs_log_append` (reserve offsets, insert, notify) and `cs_log_commit` (check
the caller still owns the partition at its epoch, store the group position, then append).
Both raise our own SQLSTATEs: `CS001` (no such partition) and `CS002` (fenced).
"""

from __future__ import annotations

import hashlib
import struct

from engine.errors import LogError

__all__ = [
    "ACQUIRE",
    "APPEND",
    "COMMIT",
    "CREATE_PARTITIONS",
    "DDL",
    "DDL_LOCK",
    "END_OFFSET",
    "ENSURE_ASSIGNMENTS",
    "EXPIRE",
    "FENCED",
    "FETCH",
    "GROUP_LOCK",
    "HEARTBEAT",
    "JOIN",
    "LEAVE",
    "LIVE",
    "LOG_ID",
    "NOTIFY",
    "NO_PARTITION",
    "OWNERSHIP",
    "PARTITION_COUNTS",
    "READ",
    "RELEASE",
    "RELEASE_ORPHANS",
    "_CHANNEL_LIMIT",
    "decode_headers",
    "encode_headers",
    "notify_channel",
]

NO_PARTITION = "CS001"
FENCED = "CS002"

DDL_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('cs_log ddl ' || $1::text, 0))"
GROUP_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('cs_log group ' || $1::text, 0))"

DDL = """
CREATE TABLE IF NOT EXISTS cs_log_partitions (
    topic        text    NOT NULL,
    "partition"  integer NOT NULL,
    next_offset  bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, "partition")
);

CREATE TABLE IF NOT EXISTS cs_log_records (
    topic        text    NOT NULL,
    "partition"  integer NOT NULL,
    "offset"     bigint  NOT NULL,
    key          text,
    value        bytea   NOT NULL,
    timestamp_ms bigint  NOT NULL,
    headers      bytea,
    PRIMARY KEY (topic, "partition", "offset")
);

-- Append-only, as the projections' cs_events and cs_audit: no role may UPDATE, DELETE or
-- TRUNCATE a record, this adapter's own included (it only ever inserts). Whoever owns the
-- table can disable the trigger; the workers' signed anchors (`countersign verify`) catch
-- what they change, since they cannot sign a new chain head.
CREATE OR REPLACE FUNCTION cs_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'countersign: % is append-only; % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'cs_log_records_append_only'
                   AND tgrelid = to_regclass('cs_log_records')) THEN
        CREATE TRIGGER cs_log_records_append_only BEFORE UPDATE OR DELETE ON cs_log_records
            FOR EACH ROW EXECUTE FUNCTION cs_log_refuse_change();
        CREATE TRIGGER cs_log_records_no_truncate BEFORE TRUNCATE ON cs_log_records
            FOR EACH STATEMENT EXECUTE FUNCTION cs_log_refuse_change();
    END IF;
END
$$;

-- The log's own identity, drawn once when its tables are created: positions kept outside the
-- log (the projections') name it, so they are never applied to another log's records.
CREATE TABLE IF NOT EXISTS cs_log_identity (
    id      integer PRIMARY KEY CHECK (id = 1),
    log_id  text    NOT NULL
);
INSERT INTO cs_log_identity (id, log_id) VALUES (1, gen_random_uuid()::text)
ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS cs_log_members (
    group_id     text        NOT NULL,
    topic        text        NOT NULL,
    member_id    text        NOT NULL,
    joined_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_until  timestamptz NOT NULL,
    PRIMARY KEY (group_id, topic, member_id)
);

CREATE TABLE IF NOT EXISTS cs_log_assignments (
    group_id     text    NOT NULL,
    topic        text    NOT NULL,
    "partition"  integer NOT NULL,
    owner        text,
    epoch        bigint  NOT NULL DEFAULT 0,
    committed    bigint,
    PRIMARY KEY (group_id, topic, "partition")
);

-- Append records given as parallel arrays, in array order per partition. Returns each
-- input's 1-based ordinal and its offset. The partitions' counter rows are locked in
-- (topic, partition) order first (ORDER BY is applied before FOR UPDATE), so concurrent
-- appends to several partitions cannot deadlock; the locks are held until commit, so the
-- records of one partition become visible in offset order and never with a gap.
CREATE OR REPLACE FUNCTION cs_log_append(
    p_topics text[], p_partitions integer[], p_keys text[], p_values bytea[],
    p_timestamps bigint[], p_headers bytea[], p_channels text[]
) RETURNS TABLE (ord bigint, "offset" bigint) LANGUAGE plpgsql AS $$
DECLARE
    wanted integer;
    locked integer;
BEGIN
    SELECT count(*) INTO wanted
      FROM (SELECT DISTINCT u.t, u.p FROM unnest(p_topics, p_partitions) AS u(t, p)) d;
    SELECT count(*) INTO locked FROM (
        SELECT c.topic FROM cs_log_partitions c
          JOIN (SELECT DISTINCT u.t, u.p FROM unnest(p_topics, p_partitions) AS u(t, p)) d
            ON c.topic = d.t AND c."partition" = d.p
         ORDER BY c.topic, c."partition"
           FOR UPDATE OF c
    ) l;
    IF locked <> wanted THEN
        RAISE EXCEPTION 'a record names a topic partition that does not exist'
              USING ERRCODE = 'CS001';
    END IF;
    RETURN QUERY
    WITH input AS (
        SELECT u.*
          FROM unnest(p_topics, p_partitions, p_keys, p_values, p_timestamps, p_headers)
               WITH ORDINALITY AS u(t, p, k, v, ts, h, o)
    ), counts AS (
        SELECT i.t, i.p, count(*) AS n FROM input i GROUP BY i.t, i.p
    ), reserved AS (
        UPDATE cs_log_partitions c SET next_offset = c.next_offset + counts.n
          FROM counts
         WHERE c.topic = counts.t AND c."partition" = counts.p
        RETURNING c.topic AS t, c."partition" AS p, c.next_offset - counts.n AS base
    ), numbered AS (
        SELECT i.*, r.base + row_number() OVER (PARTITION BY i.t, i.p ORDER BY i.o) - 1 AS off
          FROM input i JOIN reserved r ON r.t = i.t AND r.p = i.p
    ), inserted AS (  -- a data-modifying WITH always runs to completion
        INSERT INTO cs_log_records (topic, "partition", "offset", key, value, timestamp_ms, headers)
        SELECT n.t, n.p, n.off, n.k, n.v, n.ts, n.h FROM numbered n
    )
    SELECT n.o, n.off FROM numbered n ORDER BY n.o;
    PERFORM pg_notify(d.ch, d.p::text)
       FROM (SELECT DISTINCT u.ch, u.p FROM unnest(p_channels, p_partitions) AS u(ch, p)) d;
END $$;

-- Append as the owner of a group partition: check ownership at the epoch (the row lock is
-- taken here and held to commit, so a takeover waits for this commit or fences it), store
-- the group position (NULL keeps it), then append. One statement: all or nothing.
CREATE OR REPLACE FUNCTION cs_log_commit(
    p_group text, p_topic text, p_partition integer, p_member text, p_epoch bigint,
    p_consumed bigint,
    p_topics text[], p_partitions integer[], p_keys text[], p_values bytea[],
    p_timestamps bigint[], p_headers bytea[], p_channels text[]
) RETURNS TABLE (ord bigint, "offset" bigint) LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cs_log_assignments a SET committed = COALESCE(p_consumed, a.committed)
     WHERE a.group_id = p_group AND a.topic = p_topic AND a."partition" = p_partition
       AND a.owner = p_member AND a.epoch = p_epoch;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'partition % of % is not owned by member % at epoch %',
              p_partition, p_topic, p_member, p_epoch USING ERRCODE = 'CS002';
    END IF;
    IF cardinality(p_topics) > 0 THEN
        RETURN QUERY SELECT * FROM cs_log_append(
            p_topics, p_partitions, p_keys, p_values, p_timestamps, p_headers, p_channels);
    END IF;
END $$;
"""

APPEND = 'SELECT ord, "offset" FROM cs_log_append($1, $2, $3, $4, $5, $6, $7)'
COMMIT = (
    'SELECT ord, "offset" FROM cs_log_commit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '
    "$13)"
)

ENSURE_ASSIGNMENTS = """
INSERT INTO cs_log_assignments (group_id, topic, "partition")
SELECT $1, $2, g FROM generate_series(0, $3 - 1) AS g
ON CONFLICT DO NOTHING
"""

# Join or renew: inserted is true when the member was not there (a join, or a rejoin after
# its lease expired and another member removed it).
JOIN = """
INSERT INTO cs_log_members (group_id, topic, member_id, lease_until)
VALUES ($1, $2, $3, clock_timestamp() + make_interval(secs => $4))
ON CONFLICT (group_id, topic, member_id)
DO UPDATE SET lease_until = EXCLUDED.lease_until
RETURNING (xmax = 0) AS inserted
"""

HEARTBEAT = """
UPDATE cs_log_members SET lease_until = clock_timestamp() + make_interval(secs => $4)
 WHERE group_id = $1 AND topic = $2 AND member_id = $3
RETURNING 1
"""

EXPIRE = """
DELETE FROM cs_log_members
 WHERE group_id = $1 AND topic = $2 AND lease_until < clock_timestamp()
RETURNING member_id
"""

LIVE = """
SELECT member_id FROM cs_log_members WHERE group_id = $1 AND topic = $2 ORDER BY member_id
"""

RELEASE_ORPHANS = """
UPDATE cs_log_assignments SET owner = NULL
 WHERE group_id = $1 AND topic = $2 AND owner IS NOT NULL AND NOT (owner = ANY($3::text[]))
RETURNING "partition"
"""

OWNERSHIP = """
SELECT "partition", owner, epoch FROM cs_log_assignments
 WHERE group_id = $1 AND topic = $2 ORDER BY "partition"
"""

ACQUIRE = """
UPDATE cs_log_assignments SET owner = $3, epoch = epoch + 1
 WHERE group_id = $1 AND topic = $2 AND "partition" = ANY($4::integer[]) AND owner IS NULL
RETURNING "partition", epoch, committed
"""

RELEASE = """
UPDATE cs_log_assignments SET owner = NULL
 WHERE group_id = $1 AND topic = $2 AND "partition" = ANY($4::integer[]) AND owner = $3
"""

LEAVE = """
WITH released AS (
    UPDATE cs_log_assignments SET owner = NULL
     WHERE group_id = $1 AND topic = $2 AND owner = $3
)
DELETE FROM cs_log_members WHERE group_id = $1 AND topic = $2 AND member_id = $3
"""

NOTIFY = "SELECT pg_notify($1, $2)"

PARTITION_COUNTS = """
SELECT topic, count(*)::integer AS partitions FROM cs_log_partitions
 WHERE topic = ANY($1::text[]) GROUP BY topic
"""

CREATE_PARTITIONS = """
INSERT INTO cs_log_partitions (topic, "partition")
SELECT t, g FROM unnest($1::text[]) AS t, generate_series(0, $2 - 1) AS g
ON CONFLICT DO NOTHING
"""

LOG_ID = """
SELECT i.log_id FROM cs_log_identity i
 WHERE EXISTS (SELECT 1 FROM cs_log_partitions WHERE topic = $1)
"""

END_OFFSET = """
SELECT next_offset FROM cs_log_partitions WHERE topic = $1 AND "partition" = $2
"""

READ = """
SELECT "partition", "offset", key, value, timestamp_ms, headers FROM cs_log_records
 WHERE topic = $1 AND "partition" = $2 AND "offset" >= $3 AND "offset" < $4
 ORDER BY "offset" LIMIT $5
"""

# Up to $4 records of each wanted partition, from its position; the caller trims the total.
FETCH = """
SELECT r."partition", r."offset", r.key, r.value, r.timestamp_ms, r.headers
  FROM unnest($2::integer[], $3::bigint[]) AS w(p, start)
 CROSS JOIN LATERAL (
        SELECT c."partition", c."offset", c.key, c.value, c.timestamp_ms, c.headers
          FROM cs_log_records c
         WHERE c.topic = $1 AND c."partition" = w.p AND c."offset" >= w.start
         ORDER BY c."offset" LIMIT $4
       ) r
 ORDER BY r."partition", r."offset"
"""

_CHANNEL_LIMIT = 63  # PostgreSQL identifiers (and so channel names) are at most 63 bytes


def notify_channel(kind: str, schema: str, *names: str) -> str:
    """The LISTEN/NOTIFY channel of a topic (`kind="t"`) or a group (`kind="g"`): readable
    when it fits in 63 bytes, else a digest of the same text."""
    text = ":".join(("cs_log", kind, schema, *names))
    if len(text.encode()) <= _CHANNEL_LIMIT:
        return text
    digest = hashlib.sha256("\0".join((kind, schema, *names)).encode()).hexdigest()[:40]
    return f"cs_log:{kind}:{digest}"


def encode_headers(headers: tuple[tuple[str, bytes], ...]) -> bytes | None:
    """Headers as one bytea: per header a u16 key length, the UTF-8 key, a u32 value length
    and the value. No headers: NULL."""
    if not headers:
        return None
    parts: list[bytes] = []
    for key, value in headers:
        encoded = key.encode()
        parts += [struct.pack(">H", len(encoded)), encoded, struct.pack(">I", len(value)), value]
    return b"".join(parts)


def decode_headers(data: bytes | None) -> tuple[tuple[str, bytes], ...]:
    if not data:
        return ()
    headers: list[tuple[str, bytes]] = []
    at = 0
    try:
        while at < len(data):
            (key_len,) = struct.unpack_from(">H", data, at)
            key_end = at + 2 + key_len
            (value_len,) = struct.unpack_from(">I", data, key_end)
            value_end = key_end + 4 + value_len
            if value_end > len(data):
                raise struct.error(f"a header ends at byte {value_end} of {len(data)}")
            headers.append(
                (bytes(data[at + 2 : key_end]).decode(), bytes(data[key_end + 4 : value_end]))
            )
            at = value_end
    except (struct.error, UnicodeDecodeError) as error:
        raise LogError(f"stored record headers are corrupt: {error}") from error
    return tuple(headers)
