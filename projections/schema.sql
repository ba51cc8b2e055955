-- The core projections of the runs topic. Idempotent: the store runs this whole script at
-- startup (under an advisory lock), in the schema its connections use. A later change adds
-- statements below that are idempotent too (ADD COLUMN IF NOT EXISTS, CREATE INDEX IF NOT
-- EXISTS); released statements are never edited.

-- Where each projection has read up to: the next offset to read per topic partition. Written
-- in the same transaction as the rows, so rows and position never disagree.
CREATE TABLE IF NOT EXISTS cs_projection_positions (
    projection  text    NOT NULL,
    topic       text    NOT NULL,
    "partition" integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (projection, topic, "partition")
);

-- Records a projection could not use (undecodable bytes, a duplicate of a projected event,
-- a value PostgreSQL refuses). Kept with their bytes; never silently dropped.
CREATE TABLE IF NOT EXISTS cs_projection_errors (
    id          bigserial   PRIMARY KEY,
    projection  text        NOT NULL,
    topic       text        NOT NULL,
    "partition" integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    reason      text        NOT NULL,
    raw         bytea       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (projection, topic, "partition", "offset")
);

-- Events index: every event of every run, for timelines, search, replay and verification.
-- `hash` is sha256 of `raw` (the bytes in the log); `prev_hash` is the hash of seq - 1.
CREATE TABLE IF NOT EXISTS cs_events (
    run_id         text        NOT NULL,
    seq            bigint      NOT NULL,
    event_id       text        NOT NULL,
    type           text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    agent          text        NOT NULL,
    agent_version  text        NOT NULL,
    causation_id   text        NOT NULL,
    correlation_id text        NOT NULL,
    payload        jsonb       NOT NULL,
    "partition"    integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    hash           text        NOT NULL,
    prev_hash      text        NOT NULL,
    raw            bytea       NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- One row per run: its status and where it stands.
CREATE TABLE IF NOT EXISTS cs_runs (
    run_id          text        PRIMARY KEY,
    agent           text        NOT NULL,
    agent_version   text        NOT NULL,
    requested_by    text        NOT NULL,
    status          text        NOT NULL CHECK (status IN
                        ('running', 'waiting', 'parked', 'completed', 'failed', 'cancelled')),
    started_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    last_seq        bigint      NOT NULL,
    open_interrupts integer     NOT NULL,
    input           jsonb,
    output          jsonb,
    error           text
);
CREATE INDEX IF NOT EXISTS cs_runs_started_idx ON cs_runs (started_at DESC);
CREATE INDEX IF NOT EXISTS cs_runs_status_idx ON cs_runs (status, started_at DESC);

-- One row per interrupt, open or closed: what was asked, of whom, until when, and how it
-- ended. The approvals inbox is its open rows.
CREATE TABLE IF NOT EXISTS cs_interrupts (
    interrupt_id  text        PRIMARY KEY,
    run_id        text        NOT NULL,
    seq           bigint      NOT NULL,
    call          integer     NOT NULL,
    kind          text        NOT NULL,
    title         text        NOT NULL,
    tool          text,
    args          jsonb,
    risk          text        NOT NULL,
    amount        double precision,
    policy        text        NOT NULL,
    approvers     jsonb       NOT NULL,
    allowed       jsonb       NOT NULL,
    deadline      timestamptz,
    on_timeout    text        NOT NULL,
    level         integer     NOT NULL,
    quorum        integer     NOT NULL,
    votes         integer     NOT NULL,
    status        text        NOT NULL,
    raised_at     timestamptz NOT NULL,
    closed_at     timestamptz,
    decided_by    text,
    decision_kind text,
    reason        text
);
CREATE INDEX IF NOT EXISTS cs_interrupts_open_idx
    ON cs_interrupts (run_id) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS cs_interrupts_deadline_idx
    ON cs_interrupts (deadline) WHERE status = 'open';

-- Audit log: every interrupt raised, decision accepted, refused or held, vote, expiry,
-- escalation, and run parked or cancelled. One row per event, so a replayed batch cannot insert twice.
CREATE TABLE IF NOT EXISTS cs_audit (
    id           bigserial   PRIMARY KEY,
    run_id       text        NOT NULL,
    seq          bigint      NOT NULL,
    at           timestamptz NOT NULL,
    action       text        NOT NULL,
    interrupt_id text,
    decision_id  text,
    actor        text        NOT NULL,
    tool         text,
    kind         text,
    reason       text,
    policy       text,
    risk         text,
    amount       double precision,
    args         jsonb,
    edited_args  jsonb,
    diff         jsonb,
    detail       jsonb,
    UNIQUE (run_id, seq, action)
);
CREATE INDEX IF NOT EXISTS cs_audit_at_idx ON cs_audit (at);
CREATE INDEX IF NOT EXISTS cs_audit_actor_idx ON cs_audit (actor, at);
CREATE INDEX IF NOT EXISTS cs_audit_tool_idx ON cs_audit (tool, at);

-- -- Issue 5: inbox, append-only audit, statistics, live pointer ---------------------------------

-- What a person needs to decide, and who may: copied from the request when it is raised.
ALTER TABLE cs_interrupts ADD COLUMN IF NOT EXISTS agent        text    NOT NULL DEFAULT '';
ALTER TABLE cs_interrupts ADD COLUMN IF NOT EXISTS requested_by text    NOT NULL DEFAULT '';
ALTER TABLE cs_interrupts ADD COLUMN IF NOT EXISTS reasoning    text    NOT NULL DEFAULT '';
ALTER TABLE cs_interrupts ADD COLUMN IF NOT EXISTS impact       text    NOT NULL DEFAULT '';
ALTER TABLE cs_interrupts ADD COLUMN IF NOT EXISTS rule         text    NOT NULL DEFAULT '';
ALTER TABLE cs_interrupts ADD COLUMN IF NOT EXISTS confidence   double precision;
ALTER TABLE cs_interrupts ADD COLUMN IF NOT EXISTS escalation   integer NOT NULL DEFAULT 0;
ALTER TABLE cs_interrupts ADD COLUMN IF NOT EXISTS levels       integer NOT NULL DEFAULT 1;
ALTER TABLE cs_interrupts ADD COLUMN IF NOT EXISTS excluded     jsonb   NOT NULL DEFAULT '[]';
ALTER TABLE cs_interrupts ADD COLUMN IF NOT EXISTS edited_args  jsonb;
ALTER TABLE cs_audit ADD COLUMN IF NOT EXISTS agent text;

-- The inbox: oldest open first, open for a principal or role, overdue; recently closed.
CREATE INDEX IF NOT EXISTS cs_interrupts_open_raised_idx
    ON cs_interrupts (raised_at, interrupt_id) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS cs_interrupts_open_approvers_idx
    ON cs_interrupts USING gin (approvers) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS cs_interrupts_closed_idx
    ON cs_interrupts (closed_at DESC) WHERE status <> 'open';
CREATE INDEX IF NOT EXISTS cs_interrupts_call_idx ON cs_interrupts (run_id, call);

-- When each partition's last projected event happened, for lag in seconds.
ALTER TABLE cs_projection_positions ADD COLUMN IF NOT EXISTS last_event_at timestamptz;
ALTER TABLE cs_projection_positions ADD COLUMN IF NOT EXISTS updated_at timestamptz;

-- Append-only: the audit log and the events index refuse UPDATE, DELETE and TRUNCATE from
-- every role, the projector's included (it only ever inserts). A trigger rather than a
-- restricted role: it holds for whatever role the projector connects as (the embedded
-- server's superuser too), needs no role management, and a rebuild still drops whole schemas.
-- Someone who owns the table can disable it; `countersign verify` catches what they change.
CREATE OR REPLACE FUNCTION cs_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'countersign: % is append-only; % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
DO $$
DECLARE
    target text;
BEGIN
    FOREACH target IN ARRAY ARRAY['cs_audit', 'cs_events'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = target || '_append_only'
                       AND tgrelid = to_regclass(quote_ident(target))) THEN
            EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I'
                           ' FOR EACH ROW EXECUTE FUNCTION cs_refuse_change()',
                           target || '_append_only', target);
            EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I'
                           ' FOR EACH STATEMENT EXECUTE FUNCTION cs_refuse_change()',
                           target || '_no_truncate', target);
        END IF;
    END LOOP;
END
$$;

-- Which schema holds the live copy of a projection. Only the home schema's row counts (the
-- one projectors and queries are configured with); no row means the home schema itself.
-- `countersign projections rebuild` builds a new schema beside it and switches this pointer
-- (and the home schema's cs_v_* views) in one transaction once the new copy has caught up.
CREATE TABLE IF NOT EXISTS cs_projection_live (
    projection  text        PRIMARY KEY,
    schema_name text        NOT NULL,
    previous    text,
    switched_at timestamptz NOT NULL DEFAULT now()
);

-- The digest of the scripts this schema was last migrated with: a schema that is up to date
-- is not migrated again (a migration takes strong locks on tables projectors write).
CREATE TABLE IF NOT EXISTS cs_projection_schema (
    id          integer     PRIMARY KEY CHECK (id = 1),
    digest      text        NOT NULL,
    migrated_at timestamptz NOT NULL DEFAULT now()
);

-- -- Issue 9: positions know their log ------------------------------------------------------------

-- Which log each projection's positions were read from (`EventLog.log_id`: a Kafka cluster
-- and topic id, a PostgreSQL log's own id). Offsets mean nothing in another log, so a
-- projector pointed at another one refuses to start instead of applying these positions.
CREATE TABLE IF NOT EXISTS cs_projection_logs (
    projection text        NOT NULL,
    topic      text        NOT NULL,
    log_id     text        NOT NULL,
    bound_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic)
);
