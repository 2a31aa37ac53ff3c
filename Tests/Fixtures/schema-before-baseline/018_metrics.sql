-- What the processes' /metrics endpoints read from the database.

-- Per run and judge with jobs waiting: how many, and how long the oldest claimable one has
-- waited. One query per scrape: the counts are kept, and the oldest is the first entry of the
-- claim index for its run and judge.
CREATE FUNCTION jury_queue_depth()
RETURNS TABLE (run text, judge text, pending bigint, oldest_age_seconds double precision)
LANGUAGE sql STABLE AS $$
    SELECT r.name, c.judge, c.pending,
           coalesce(extract(epoch FROM now() - (
               SELECT min(j.run_after) FROM jobs j
               WHERE j.run_id = c.run_id AND j.judge = c.judge AND j.state = 'pending' AND j.run_after <= now())), 0)::float8
    FROM (
        SELECT k.run_id, k.judge, sum(k.n)::bigint AS pending
        FROM run_counts k WHERE k.counter = 'jobs.pending' AND k.judge <> ''
        GROUP BY k.run_id, k.judge
    ) c
    JOIN runs r ON r.id = c.run_id
    WHERE c.pending > 0 AND r.state IN ('active', 'paused')
    ORDER BY r.name, c.judge
$$;

INSERT INTO jury_privileges (role, kind, name) VALUES ('jury_worker', 'function', 'jury_queue_depth');

-- The reducer's claim also says how long ago each example's last vote landed, for the
-- last-vote-to-verdict histogram; otherwise as in 013.
DROP FUNCTION jury_claim_ready_examples(bigint, int);
CREATE FUNCTION jury_claim_ready_examples(p_run bigint, p_limit int)
RETURNS TABLE (example_id bigint, run_id bigint, source_label text, human_label text, reviewed boolean,
               early boolean, judge text, label text, since_last_vote_seconds double precision)
LANGUAGE plpgsql AS $$
DECLARE
    claimed bigint[];
BEGIN
    SELECT array_agg(x.id ORDER BY x.id) INTO claimed FROM (
        SELECT e.id
        FROM examples e
        WHERE e.state = 'ready' AND (p_run IS NULL OR e.run_id = p_run)
          AND e.run_id <> ALL (ARRAY(SELECT r.id FROM runs r WHERE r.config #>> '{consensus,rule}' = 'dawid-skene'))
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

-- Recording verdicts returns the examples it decided, so that the reducer counts exactly the
-- verdicts stored (those made under a rule the run no longer has are not); otherwise as in 009.
DROP FUNCTION jury_record_verdicts(bigint[], bigint[], text[], text[], float8[], int[], text[], jsonb[], text[],
                                   text[], boolean[]);
CREATE FUNCTION jury_record_verdicts(
    p_examples bigint[], p_runs bigint[], p_labels text[], p_statuses text[], p_agreements float8[],
    p_votes int[], p_rules text[], p_rule_params jsonb[], p_decided_by text[], p_outcomes text[], p_early boolean[]
) RETURNS SETOF bigint
LANGUAGE sql AS $$
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
    FROM current c
    WHERE e.id = c.example_id AND e.id = ANY (p_examples)
    RETURNING e.id
$$;
