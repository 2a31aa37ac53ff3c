-- An example that failed jobs leave short of a verdict gives up its other jobs.
--
-- jury_next_state makes an example ready once its jobs that have not failed are fewer than the
-- votes it needs. Its pending and waiting jobs stayed pending for good: claims skip them, since
-- the example no longer votes, so a finished run still showed jobs left, and every claim for
-- that judge walked past them. They are now cancelled, as early decision cancels the jobs of a
-- hopeless example, and counted in jobs_cancelled, the calls saved.
--
-- jury retry gives such an example its cancelled jobs back, waiting behind the retried ones.
-- An example with a human label is never short: it calibrates the panel, so it waits for every
-- judge's job to close, as it already escaped early decision.

CREATE OR REPLACE FUNCTION jury_settle_examples(p_examples bigint[], p_failed boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_ready int;
    v_hopeless bigint[];
    v_short bigint[];
    v_cancel bigint[];
    v_released int;
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
        RETURNING e.id, e.state, e.jobs_open
    )
    SELECT count(*) FILTER (WHERE u.state = 'ready'),
           array_agg(u.id) FILTER (WHERE u.state = 'ready' AND u.jobs_open > 0)
    INTO v_ready, v_short
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

    -- The waiting jobs of the next order, on examples where nothing else is open.
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

    IF v_ready > 0 THEN
        PERFORM pg_notify('jury_ready', '');
    END IF;
    IF v_released > 0 THEN
        PERFORM pg_notify('jury_jobs', '');
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION jury_reset_failed_jobs(p_run bigint, p_batch text, p_judge text, p_limit int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    failed bigint[];
    short bigint[];
    retried int;
BEGIN
    SELECT array_agg(x.id) INTO failed FROM (
        SELECT j.id
        FROM jobs j JOIN examples e ON e.id = j.example_id
        WHERE j.run_id = p_run AND j.state = 'failed'
          AND (p_batch IS NULL OR e.batch = p_batch) AND (p_judge IS NULL OR j.judge = p_judge)
        ORDER BY j.id
        LIMIT p_limit
    ) x;
    IF failed IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM jury_lock_examples_of(failed);
    -- Examples whose failures had left too few jobs for a verdict, before this retry.
    SELECT array_agg(e.id) INTO short FROM examples e
    WHERE e.id = ANY (ARRAY(SELECT j.example_id FROM jobs j WHERE j.id = ANY (failed)))
      AND e.jobs_total - e.jobs_failed < e.votes_needed AND e.jobs_cancelled > 0;
    WITH retried_jobs AS (
        UPDATE jobs j
        SET state = 'pending', attempts = 0, transient_failures = 0, retrying_since = NULL, run_after = now(),
            last_error = NULL, updated_at = now()
        WHERE j.id = ANY (failed) AND j.state = 'failed'
        RETURNING j.example_id
    ), counted AS (
        SELECT r.example_id, count(*)::int AS n FROM retried_jobs r GROUP BY r.example_id
    ), withdrawn AS (
        DELETE FROM verdicts v USING counted c WHERE v.example_id = c.example_id
    ), reopened AS (
        UPDATE examples e
        SET jobs_open = e.jobs_open + c.n, jobs_failed = e.jobs_failed - c.n, state = 'voting'
        FROM counted c WHERE e.id = c.example_id
    )
    SELECT coalesce(sum(c.n), 0) INTO retried FROM counted c;
    -- Their cancelled jobs come back, waiting behind the retried ones: once those have answered,
    -- the waiting ones are released, unless the votes by then already decide the example.
    WITH revived AS (
        UPDATE jobs j SET state = 'waiting', updated_at = now()
        WHERE j.example_id = ANY (short) AND j.state = 'cancelled'
        RETURNING j.example_id
    ), counted AS (
        SELECT r.example_id, count(*)::int AS n FROM revived r GROUP BY r.example_id
    )
    UPDATE examples e
    SET jobs_open = e.jobs_open + c.n, jobs_waiting = e.jobs_waiting + c.n, jobs_cancelled = e.jobs_cancelled - c.n
    FROM counted c WHERE e.id = c.example_id;
    PERFORM pg_notify('jury_jobs', '');
    RETURN retried;
END
$$;

-- Jobs stranded that way before this migration: pending or waiting under an example that no
-- longer votes. No other path leaves a job claimable under such an example.
WITH stranded AS (
    UPDATE jobs j SET state = 'cancelled', updated_at = now()
    FROM examples e
    WHERE e.id = j.example_id AND e.state <> 'voting' AND j.state IN ('pending', 'waiting')
    RETURNING j.example_id
), counted AS (
    SELECT s.example_id, count(*)::int AS n FROM stranded s GROUP BY s.example_id
)
UPDATE examples e
SET jobs_open = e.jobs_open - c.n, jobs_cancelled = e.jobs_cancelled + c.n, jobs_waiting = 0
FROM counted c WHERE e.id = c.example_id;
