-- The SQL contract for other systems: read these views, not the cs_* tables behind them.
-- Columns are only ever added (at the end), never renamed, retyped or removed. Times are
-- timestamptz (UTC), durations seconds as double precision. `docs/projections.md` describes
-- every column. Run after schema.sql, in the same schema, by `ProjectionStore.migrate()`; the
-- home schema's copies follow the live schema after `countersign projections rebuild`.

-- "Due soon" = the deadline is within this interval. Per session:
--   SET countersign.due_soon = '15 minutes';
CREATE OR REPLACE FUNCTION cs_due_soon() RETURNS interval LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('countersign.due_soon', true), '')::interval,
                    interval '1 hour')
$$;

-- Every approval request, open or closed. `sla`: for an open request `on_time`, `due_soon`,
-- `overdue` or `no_deadline`; for a closed one `met` or `missed` (closed after the deadline)
-- or `no_deadline`. `may_decide`: the approvers at the current level (principals and
-- `role:<name>`; empty = anyone) minus `excluded`, and never `requested_by`.
CREATE OR REPLACE VIEW cs_v_inbox AS
SELECT interrupt_id, run_id, agent, requested_by, kind, title, tool, args,
       reasoning AS why, impact, risk, amount, policy, rule, confidence,
       approvers AS may_decide, excluded, level, levels, quorum, votes, escalation,
       allowed, deadline, on_timeout, status, raised_at, closed_at, decided_by,
       decision_kind, reason AS decision_reason, edited_args,
       extract(epoch FROM coalesce(closed_at, now()) - raised_at)::double precision AS age_s,
       CASE
           WHEN deadline IS NULL THEN 'no_deadline'
           WHEN status <> 'open' THEN CASE WHEN closed_at <= deadline THEN 'met' ELSE 'missed' END
           WHEN deadline <= now() THEN 'overdue'
           WHEN deadline <= now() + cs_due_soon() THEN 'due_soon'
           ELSE 'on_time'
       END AS sla
FROM cs_interrupts;

-- The audit log, oldest first by (at, run_id, seq). `action` is one of gate_evaluated,
-- interrupt_raised, decision_accepted, decision_refused, decision_held, vote_recorded,
-- interrupt_expired, interrupt_escalated, run_parked, run_cancelled.
CREATE OR REPLACE VIEW cs_v_audit AS
SELECT id, run_id, seq, at, action, agent, actor, interrupt_id, decision_id, tool, kind,
       reason, policy, risk, amount, args, edited_args, diff, detail
FROM cs_audit;

-- A policy's verdict on each tool call (round 1: as the agent made it; then one per edit).
CREATE OR REPLACE VIEW cs_v_gates AS
SELECT run_id, seq, at, agent, tool, kind AS action, policy, reason, risk, amount,
       (detail ->> 'call')::integer AS call,
       (detail ->> 'round')::integer AS round,
       coalesce(detail ->> 'rule', '') AS rule,
       (detail ->> 'confidence')::double precision AS confidence
FROM cs_audit
WHERE action = 'gate_evaluated';

-- One row per request with its outcome: `status` is open, approved, edited, rejected,
-- responded, expired or withdrawn; `escalated` marks an expiry that handed the call on;
-- `decision_s` is the time a person took (null unless a person decided).
CREATE OR REPLACE VIEW cs_v_decisions AS
SELECT interrupt_id, run_id, seq, call, agent, kind,
       CASE WHEN kind = 'question' THEN '(question)' ELSE coalesce(tool, '') END AS tool, args,
       edited_args, risk, amount, confidence, policy, rule, approvers, level, escalation,
       status, decided_by, decision_kind, reason, raised_at, closed_at,
       (status = 'expired' AND decision_kind = 'escalate') AS escalated,
       CASE WHEN status IN ('approved', 'edited', 'rejected', 'responded')
            THEN extract(epoch FROM closed_at - raised_at)::double precision END AS decision_s
FROM cs_interrupts;

-- The facts the statistics count: requests, and tool calls a policy let through unasked.
CREATE OR REPLACE VIEW cs_v_stat_facts AS
SELECT agent, tool, risk,
       CASE WHEN decision_s IS NOT NULL THEN decided_by END AS approver,
       to_char(raised_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
       status, escalated, decision_s, 0 AS auto
FROM cs_v_decisions
UNION ALL
SELECT agent, tool, risk, NULL, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
       NULL, false, NULL, 1
FROM cs_v_gates
WHERE round = 1 AND action IN ('auto', 'notify');

-- Decision statistics, one row per (dimension, key): dimension is agent, tool, risk,
-- approver (who decided) or day (UTC, of the request). `approval_rate` is
-- approved / (approved + edited + rejected); `median_s` and `p90_s` are times to decision.
-- Each fact is counted once per dimension: the VALUES list pairs it with its key in each.
CREATE OR REPLACE VIEW cs_v_stats AS
SELECT d.dimension, d.key, count(*) FILTER (WHERE f.auto = 0) AS requests,
       count(*) FILTER (WHERE f.status = 'open') AS open,
       count(*) FILTER (WHERE f.status = 'approved') AS approved,
       count(*) FILTER (WHERE f.status = 'edited') AS edited,
       count(*) FILTER (WHERE f.status = 'rejected') AS rejected,
       count(*) FILTER (WHERE f.status = 'responded') AS responded,
       count(*) FILTER (WHERE f.status = 'expired' AND NOT f.escalated) AS expired,
       count(*) FILTER (WHERE f.escalated) AS escalated,
       count(*) FILTER (WHERE f.status = 'withdrawn') AS withdrawn,
       count(*) FILTER (WHERE f.auto = 1) AS auto_approved,
       count(*) FILTER (WHERE f.status = 'approved')::double precision
           / nullif(count(*) FILTER (WHERE f.status IN ('approved', 'edited', 'rejected')), 0)
           AS approval_rate,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY f.decision_s) AS median_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY f.decision_s) AS p90_s
FROM cs_v_stat_facts f
CROSS JOIN LATERAL (VALUES ('agent'::text, f.agent), ('tool', f.tool), ('risk', f.risk),
                           ('approver', f.approver), ('day', f.day)) AS d (dimension, key)
WHERE d.dimension <> 'approver' OR d.key IS NOT NULL  -- requests no person decided
GROUP BY d.dimension, d.key;

-- Each tool call a policy looked at (round 1), the arguments it was made with and how people
-- answered it: `outcome` is auto or notify (ran unasked), else the call's requests taken
-- together: open, rejected, expired, withdrawn, edited or approved. What-if reads this.
CREATE OR REPLACE VIEW cs_v_calls AS
SELECT g.run_id, g.call, g.at, g.agent, g.tool, g.action, g.policy, g.rule, g.risk,
       g.amount, g.confidence,
       coalesce(r.args, (SELECT e.payload -> 'args' FROM cs_events e
                         WHERE e.run_id = g.run_id AND e.seq > g.seq
                           AND e.type = 'ToolCallScheduled'
                           AND (e.payload ->> 'call')::integer = g.call
                         ORDER BY e.seq LIMIT 1)) AS args,
       CASE WHEN g.action IN ('auto', 'notify') THEN g.action ELSE r.outcome END AS outcome,
       r.decided_by, r.decision_s
FROM cs_v_gates g
LEFT JOIN LATERAL (
    SELECT (array_agg(i.args ORDER BY i.seq))[1] AS args,
           CASE
               WHEN bool_or(i.status = 'open') THEN 'open'
               WHEN bool_or(i.status = 'rejected') THEN 'rejected'
               WHEN bool_or(i.status = 'expired' AND i.decision_kind <> 'escalate')
                   THEN 'expired'
               WHEN bool_or(i.status = 'withdrawn') THEN 'withdrawn'
               WHEN bool_or(i.status = 'edited') THEN 'edited'
               WHEN bool_or(i.status = 'approved') THEN 'approved'
           END AS outcome,
           (array_agg(i.decided_by ORDER BY i.seq DESC))[1] AS decided_by,
           sum(extract(epoch FROM i.closed_at - i.raised_at)::double precision)
               FILTER (WHERE i.status IN ('approved', 'edited', 'rejected')) AS decision_s
    FROM cs_interrupts i
    WHERE i.run_id = g.run_id AND i.call = g.call AND i.kind = 'tool' AND i.seq > g.seq
) r ON g.action NOT IN ('auto', 'notify')
WHERE g.round = 1;
