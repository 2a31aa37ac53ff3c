-- Notifications from the queue's hot path are throttled: at most one per channel every 50 ms.
--
-- Settle sent NOTIFY jury_ready from nearly every record, and NOTIFY jury_jobs whenever it
-- released the next judges of an example. That cost twice:
-- - A transaction that notifies holds a database-wide lock from just before its commit until
--   the commit is on disk, so such transactions commit one at a time and never share a WAL
--   flush. pgbench with 16 clients, each inserting a row and committing, made 7,800-8,400
--   transactions/s on a 2-core machine, and 2,800-3,200 when each also notified.
-- - Each notification wakes every backend that listens in the database, whatever the channel:
--   every worker waiting for jobs, every reducer. pgbench running Jury's claim and record
--   (16 clients, 4 votes a record) made 1,930-2,190 votes/s, and 1,380-1,460 with 40 idle
--   listeners attached; throttled, 1,980-2,120 with them.
--
-- Now a record notifies only if it takes the channel's row in notify_clock and the last
-- notification there is more than 50 ms old. A transaction that finds the row taken by another
-- leaves the notification to it (SKIP LOCKED: nobody waits). So one notification may stand for
-- work committed up to about 50 ms after it: a reducer or worker woken by one looks again
-- 100 ms later before it goes back to its idle poll. The rarer paths (enqueue, retry, reaping,
-- runs and breakers) still notify every time.

CREATE TABLE notify_clock (
    channel text PRIMARY KEY,
    sent_at timestamptz NOT NULL DEFAULT '-infinity'
) WITH (fillfactor = 10);

INSERT INTO notify_clock (channel) VALUES ('jury_ready'), ('jury_jobs');

CREATE FUNCTION jury_notify_throttled(p_channel text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM notify_clock c
    WHERE c.channel = p_channel AND c.sent_at < clock_timestamp() - interval '50 milliseconds'
    FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
        UPDATE notify_clock SET sent_at = clock_timestamp() WHERE channel = p_channel;
        PERFORM pg_notify(p_channel, '');
    END IF;
END
$$;

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
        PERFORM jury_notify_throttled('jury_ready');
    END IF;
    IF v_released > 0 THEN
        PERFORM jury_notify_throttled('jury_jobs');
    END IF;
END
$$;
ALTER FUNCTION jury_settle_examples(bigint[], boolean) SET enable_seqscan = off;
ALTER FUNCTION jury_settle_examples(bigint[], boolean) SET plan_cache_mode = force_generic_plan;
