-- Fewer fixed costs in each claim and record, which matter when batches are small.
--
-- A worker whose judges are slow claims and records a few jobs at a time, and then what a
-- call costs whatever its size dominates. pgbench running Jury's claim and record with one
-- client and one job per judge (4 votes a transaction) spent about 2.3 ms a transaction,
-- against 55-75 microseconds a vote in batches of 128 (pg_stat_statements with
-- track_planning):
-- - Planning, at every call. plpgsql keeps a plan per statement, but it may plan afresh for
--   each call's arguments when it judges the generic plan dearer, and it did for settle's
--   statements and the examples' locks: 350-400 microseconds a record. Every statement there
--   addresses rows by key, so the generic plan is the plan; enable_seqscan = off keeps one
--   made while a table was nearly empty from scanning it (see 033).
-- - jury_run_within_budget, a LANGUAGE sql function that is SECURITY DEFINER (granted to
--   workers) and so never inlined: parsed and planned at every call, once per judge in every
--   claim. In plpgsql its plan is kept; the claim now asks once per run, not per judge.
-- - Settle's release of waiting jobs ran for every record, and its two updates, though empty
--   unless the run orders its judges, each fired a count trigger.
-- - The claim read each claimed job's example twice (its state, then its payload); it reads
--   it once, and finds the jobs it locked again by their row address rather than the primary
--   key: 19 buffers a vote instead of 24 in batches of 128.

ALTER FUNCTION jury_lock_examples_of(bigint[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION jury_lock_examples_of(bigint[]) SET enable_seqscan = off;

CREATE OR REPLACE FUNCTION jury_run_within_budget(p_run bigint) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT (r.config ->> 'budget_usd') IS NULL
                   OR coalesce((SELECT sum(s.cost_usd) FROM judge_spend s WHERE s.run_id = r.id), 0)
                      < (r.config ->> 'budget_usd')::double precision
            FROM runs r WHERE r.id = p_run);
END
$$;

-- The claim of 032. A job's row address (ctid) cannot change between the lock and the update
-- of one statement: the row is locked, so no other transaction can move it.
CREATE OR REPLACE FUNCTION jury_claim_jobs(
    p_owner text, p_lease_seconds double precision, p_runs bigint[], p_judges text[], p_limits int[]
) RETURNS TABLE (job_id bigint, run_id bigint, example_id bigint, judge text, attempts int, claim int,
                 transient_failures int, retrying_since timestamptz, external_id text, payload jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH open_runs AS MATERIALIZED (
        SELECT r.id FROM runs r
        WHERE r.id = ANY (p_runs) AND r.state = 'active' AND jury_run_within_budget(r.id)
    ), wanted AS (
        SELECT w.* FROM unnest(p_runs, p_judges, p_limits) AS w (run_id, judge, wanted)
        WHERE w.run_id IN (SELECT o.id FROM open_runs o)
          AND NOT EXISTS (SELECT 1 FROM judge_breakers b WHERE b.run_id = w.run_id AND b.judge = w.judge)
    ), picked AS (
        SELECT c.id, c.row_address, c.external_id, c.payload
        FROM wanted w
        CROSS JOIN LATERAL (
            SELECT j.id, j.ctid AS row_address, x.external_id, x.payload
            FROM jobs j
            JOIN examples x ON x.id = j.example_id AND x.state = 'voting'
            WHERE j.state = 'pending' AND j.run_id = w.run_id AND j.judge = w.judge AND j.run_after <= now()
            ORDER BY j.run_after, j.id
            LIMIT w.wanted
            FOR UPDATE OF j SKIP LOCKED
        ) c
    ), claimed AS (
        UPDATE jobs j
        SET state = 'running', attempts = j.attempts + 1, claims = j.claims + 1, lease_owner = p_owner,
            lease_expires_at = now() + make_interval(secs => p_lease_seconds), updated_at = now()
        WHERE j.ctid = ANY (ARRAY(SELECT p.row_address FROM picked p))
        RETURNING j.id, j.run_id, j.example_id, j.judge, j.attempts, j.claims, j.transient_failures,
                  j.retrying_since
    )
    SELECT c.id, c.run_id, c.example_id, c.judge, c.attempts, c.claims, c.transient_failures, c.retrying_since,
           p.external_id, p.payload
    FROM claimed c
    JOIN picked p ON p.id = c.id;
END
$$;

-- Settle as in 026, skipping the release of waiting jobs when no example can have any due.
-- CREATE OR REPLACE drops the SET clauses, so they are stated again.
CREATE OR REPLACE FUNCTION jury_settle_examples(p_examples bigint[], p_failed boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_ready int;
    v_hopeless bigint[];
    v_short bigint[];
    v_cancel bigint[];
    v_released int := 0;
    v_maybe_due boolean;
BEGIN
    WITH counted AS (
        SELECT c.example_id, count(*)::int AS closed,
               CASE WHEN p_failed THEN count(*)::int ELSE 0 END AS failed
        FROM unnest(p_examples) AS c (example_id)
        GROUP BY c.example_id
    ), updated AS (
        UPDATE examples e
        SET jobs_open = e.jobs_open - c.closed,
            jobs_failed = e.jobs_failed + c.failed,
            -- An example with a human label calibrates the panel: it waits for every job to close.
            state = jury_next_state(e.state, e.jobs_open - c.closed, e.jobs_total,
                                    CASE WHEN e.human_label IS NULL THEN e.jobs_failed + c.failed ELSE 0 END,
                                    e.votes_needed)
        FROM counted c
        WHERE e.id = c.example_id AND e.id = ANY (p_examples)
        RETURNING e.id, e.state, e.jobs_open, e.jobs_waiting
    )
    SELECT count(*) FILTER (WHERE u.state = 'ready'),
           array_agg(u.id) FILTER (WHERE u.state = 'ready' AND u.jobs_open > 0),
           coalesce(bool_or(u.state = 'voting' AND u.jobs_waiting > 0 AND u.jobs_open = u.jobs_waiting), false)
    INTO v_ready, v_short, v_maybe_due
    FROM updated u;

    SELECT array_agg(e.id) INTO v_hopeless
    FROM examples e
    JOIN runs r ON r.id = e.run_id
    CROSS JOIN LATERAL (
        SELECT count(DISTINCT v.label) AS labels, max(v.n) AS top
        FROM (SELECT x.label, count(*) AS n FROM votes x WHERE x.example_id = e.id GROUP BY x.label) v
    ) t
    WHERE e.id = ANY (p_examples) AND e.state = 'voting' AND e.jobs_open > 0 AND e.human_label IS NULL
      AND coalesce((r.config #>> '{consensus,early_decision}')::boolean, true)
      AND CASE r.config #>> '{consensus,rule}'
              WHEN 'unanimous' THEN t.labels > 1
              WHEN 'quorum' THEN t.top + e.jobs_open < (r.config #>> '{consensus,quorum}')::int
              ELSE false END;

    -- Hopeless examples become ready now; short ones are ready already. Both lose the jobs
    -- nobody has called yet. Running jobs finish, or are cancelled when they are given back.
    v_cancel := v_hopeless || v_short;
    IF v_cancel IS NOT NULL THEN
        WITH cancelled AS (
            UPDATE jobs j SET state = 'cancelled', updated_at = now()
            WHERE j.example_id = ANY (v_cancel) AND j.state IN ('pending', 'waiting')
            RETURNING j.example_id
        ), counted AS (
            SELECT c.example_id, count(*)::int AS n FROM cancelled c GROUP BY c.example_id
        )
        UPDATE examples e
        SET jobs_open = e.jobs_open - coalesce(c.n, 0), jobs_cancelled = e.jobs_cancelled + coalesce(c.n, 0),
            jobs_waiting = 0, state = 'ready'
        FROM unnest(v_cancel) AS h (id) LEFT JOIN counted c ON c.example_id = h.id
        WHERE e.id = h.id AND e.id = ANY (v_cancel) AND (c.n IS NOT NULL OR e.state = 'voting');
        v_ready := v_ready + coalesce(cardinality(v_hopeless), 0);
    END IF;

    -- The waiting jobs of the next order, on examples where nothing else is open. Only runs with
    -- judge orders have waiting jobs: elsewhere the statement, and the count triggers its two
    -- empty updates would fire, are skipped.
    IF v_maybe_due THEN
        WITH due AS (
            SELECT e.id FROM examples e
            WHERE e.id = ANY (p_examples) AND e.state = 'voting' AND e.jobs_waiting > 0 AND e.jobs_open = e.jobs_waiting
        ), next_order AS (
            SELECT j.example_id, min(j.judge_order) AS judge_order
            FROM jobs j WHERE j.example_id = ANY (ARRAY(SELECT id FROM due)) AND j.state = 'waiting'
            GROUP BY j.example_id
        ), released AS (
            UPDATE jobs j SET state = 'pending', run_after = now(), updated_at = now()
            FROM next_order n
            WHERE j.example_id = n.example_id AND j.judge_order = n.judge_order AND j.state = 'waiting'
              AND j.example_id = ANY (ARRAY(SELECT id FROM due))
            RETURNING j.example_id
        ), counted AS (
            SELECT r.example_id, count(*)::int AS n FROM released r GROUP BY r.example_id
        ), moved AS (
            UPDATE examples e SET jobs_waiting = e.jobs_waiting - c.n FROM counted c WHERE e.id = c.example_id
            RETURNING 1
        )
        SELECT coalesce(sum(c.n), 0) INTO v_released FROM counted c;
    END IF;

    IF v_ready > 0 THEN
        PERFORM pg_notify('jury_ready', '');
    END IF;
    IF v_released > 0 THEN
        PERFORM pg_notify('jury_jobs', '');
    END IF;
END
$$;
ALTER FUNCTION jury_settle_examples(bigint[], boolean) SET enable_seqscan = off;
ALTER FUNCTION jury_settle_examples(bigint[], boolean) SET plan_cache_mode = force_generic_plan;
