-- The reducer's two statements read what they need through an index, whatever the planner
-- estimates.
--
-- Claiming ready examples excluded Dawid-Skene runs with `run_id <> ALL (ARRAY(...))`. The
-- planner estimates that condition, over an array it cannot see, to keep about no row, so it
-- read every example (a sequential scan) and sorted the ready ones, instead of reading the
-- first few of `examples_ready` in order: each claim cost the whole table, more as the run
-- grew. It now takes the runs it decides as an array first and keeps `run_id = ANY (...)`,
-- which the planner estimates as it should.
--
-- Recording verdicts joined them to examples on `e.id = c.example_id AND e.id = ANY (p_examples)`.
-- Estimating the verdicts as one row (their rule is compared with a CASE over the run's config),
-- the planner could choose a nested loop that read every example of the array again for each
-- verdict: n x n rows, 480,000 buffers and 170 ms for the reducer's batch of 500 in `jury bench`,
-- all of it while holding the locks of examples that votes wait for. The examples are now read
-- once, through the array of the verdicts that hold; and the function is plpgsql, which keeps
-- its plan (see 032).

CREATE OR REPLACE FUNCTION jury_claim_ready_examples(p_run bigint, p_limit int)
RETURNS TABLE (example_id bigint, run_id bigint, source_label text, human_label text, reviewed boolean,
               early boolean, judge text, label text, since_last_vote_seconds double precision)
LANGUAGE plpgsql AS $$
DECLARE
    decided_here bigint[];
    claimed bigint[];
BEGIN
    -- Dawid-Skene runs are decided a batch at a time, elsewhere.
    decided_here := ARRAY(
        SELECT r.id FROM runs r
        WHERE (p_run IS NULL OR r.id = p_run) AND r.config #>> '{consensus,rule}' IS DISTINCT FROM 'dawid-skene');
    SELECT array_agg(x.id ORDER BY x.id) INTO claimed FROM (
        SELECT e.id
        FROM examples e
        WHERE e.state = 'ready' AND e.run_id = ANY (decided_here)
        ORDER BY e.id LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ) x;
    IF claimed IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT e.id, e.run_id, e.source_label, e.human_label, e.reviewed_at IS NOT NULL,
           e.jobs_open > 0 OR e.jobs_cancelled > 0, v.judge, v.label,
           extract(epoch FROM clock_timestamp() - max(v.created_at) OVER (PARTITION BY e.id))::float8
    FROM examples e LEFT JOIN votes v ON v.example_id = e.id
    WHERE e.id = ANY (claimed)
    ORDER BY e.id;
END
$$;

CREATE OR REPLACE FUNCTION jury_record_verdicts(
    p_examples bigint[], p_runs bigint[], p_labels text[], p_statuses text[], p_agreements float8[],
    p_votes int[], p_rules text[], p_rule_params jsonb[], p_decided_by text[], p_outcomes text[], p_early boolean[]
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH current AS (
        SELECT n.*
        FROM unnest(p_examples, p_runs, p_labels, p_statuses, p_agreements, p_votes, p_rules, p_rule_params,
                    p_decided_by, p_outcomes, p_early)
             AS n (example_id, run_id, label, status, agreement, votes, rule, rule_params, decided_by, outcome, early)
        JOIN runs r ON r.id = n.run_id
        WHERE n.rule = CASE r.config #>> '{consensus,rule}'
                           WHEN 'quorum' THEN 'quorum:' || coalesce(r.config #>> '{consensus,quorum}', '0')
                           ELSE r.config #>> '{consensus,rule}' END
    ), inserted AS (
        INSERT INTO verdicts (example_id, run_id, label, status, agreement, votes, rule, rule_params, decided_by,
                              outcome, early)
        SELECT c.example_id, c.run_id, c.label, c.status, c.agreement, c.votes, c.rule, c.rule_params, c.decided_by,
               c.outcome, c.early
        FROM current c
        ON CONFLICT (example_id) DO NOTHING
    )
    UPDATE examples e SET state = 'decided'
    WHERE e.id = ANY (ARRAY(SELECT c.example_id FROM current c))
    RETURNING e.id;
END
$$;
