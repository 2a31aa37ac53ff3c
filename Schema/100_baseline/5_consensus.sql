-- Consensus: the reducer's claim of ready examples, the verdicts it records, verdicts replaced
-- by a new reduction or by people's labels, and when a Dawid-Skene batch is due.
--
-- Invariants:
-- - An example is decided once: the reducer claims ready examples FOR UPDATE SKIP LOCKED and
--   moves them to decided in the transaction that writes their verdicts, so two reducers never
--   decide one example, and a verdict already there is kept.
-- - A verdict replaced (jury reduce, jury import-labels) is kept in verdict_history first; two
--   reductions of one run take turns on the run's row.
-- - The reducer's statements read through indexes whatever the planner estimates: plpgsql keeps
--   their plans, and the claim runs with enable_seqscan off.

-- The reducer's claim: up to p_limit ready examples (of one run, or of all when p_run is NULL),
-- locked until the caller's transaction ends, with one row per vote (judge and label NULL for
-- an example without votes). It takes the runs it decides as an array first and walks each
-- run's first ready examples in turn (examples_ready_by_run), locking only those it returns;
-- a reducer of all runs takes from the lowest run id first.
CREATE OR REPLACE FUNCTION jury_claim_ready_examples(p_run bigint, p_limit int)
RETURNS TABLE (example_id bigint, run_id bigint, source_label text, human_label text, reviewed boolean,
               early boolean, judge text, label text, since_last_vote_seconds double precision)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    decided_here bigint[];
    claimed bigint[];
BEGIN
    -- Dawid-Skene runs are decided a batch at a time, elsewhere.
    decided_here := ARRAY(
        SELECT r.id FROM runs r
        WHERE (p_run IS NULL OR r.id = p_run) AND r.config #>> '{consensus,rule}' IS DISTINCT FROM 'dawid-skene'
        ORDER BY r.id);
    SELECT array_agg(x.id ORDER BY x.id) INTO claimed FROM (
        SELECT c.id
        FROM unnest(decided_here) AS d (run_id)
        CROSS JOIN LATERAL (
            SELECT e.id
            FROM examples e
            WHERE e.state = 'ready' AND e.run_id = d.run_id
            ORDER BY e.id LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        ) c
        LIMIT p_limit
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

-- The reducer's verdicts, and the examples' move to decided, in the caller's transaction (the
-- one that claimed them). A verdict already there is kept. Returns how many examples moved.
-- The examples are read once, through the array of the verdicts that hold.
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

-- Replaces verdicts of a run (jury reduce, jury import-labels) for the examples of the run that
-- are still there, locked (FOR KEY SHARE) until the caller commits: those there move to
-- verdict_history first. Runs in the caller's transaction, which holds the run's row lock so
-- two reductions of one run take turns. Returns how many verdicts it wrote.
CREATE OR REPLACE FUNCTION jury_replace_verdicts(
    p_run bigint, p_examples bigint[], p_labels text[], p_statuses text[], p_agreements float8[], p_votes int[],
    p_rules text[], p_rule_params jsonb[], p_decided_by text[], p_outcomes text[], p_early boolean[]
) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_present bigint[];
    v_written int;
BEGIN
    SELECT array_agg(e.id) INTO v_present
    FROM (SELECT e.id FROM examples e WHERE e.id = ANY (p_examples) AND e.run_id = p_run ORDER BY e.id FOR KEY SHARE) e;
    WITH old AS (
        DELETE FROM verdicts v WHERE v.run_id = p_run AND v.example_id = ANY (v_present)
        RETURNING v.*
    )
    INSERT INTO verdict_history (example_id, run_id, label, status, agreement, votes, rule, rule_params,
                                 decided_by, outcome, early, decided_at)
    SELECT o.example_id, o.run_id, o.label, o.status, o.agreement, o.votes, o.rule, o.rule_params,
           o.decided_by, o.outcome, o.early, o.decided_at
    FROM old o;
    INSERT INTO verdicts (example_id, run_id, label, status, agreement, votes, rule, rule_params, decided_by,
                          outcome, early)
    SELECT n.example_id, p_run, n.label, n.status, n.agreement, n.votes, n.rule, n.rule_params, n.decided_by,
           n.outcome, n.early
    FROM unnest(p_examples, p_labels, p_statuses, p_agreements, p_votes, p_rules, p_rule_params, p_decided_by,
                p_outcomes, p_early)
         AS n (example_id, label, status, agreement, votes, rule, rule_params, decided_by, outcome, early)
    WHERE n.example_id = ANY (v_present);
    GET DIAGNOSTICS v_written = ROW_COUNT;
    RETURN v_written;
END;
$$;

-- People's labels from a review (jury import-labels), by external id, in the caller's
-- transaction. Every id must be in the run: the ids that are not come back, and the caller
-- rolls back. Returns the examples labelled (or, when some are unknown, nothing).
CREATE OR REPLACE FUNCTION jury_import_labels(p_run bigint, p_external_ids text[], p_labels text[])
RETURNS TABLE (example_id bigint, unknown_id text)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    SELECT NULL::bigint, i.external_id
    FROM unnest(p_external_ids) AS i (external_id)
    WHERE NOT EXISTS (SELECT 1 FROM examples e WHERE e.run_id = p_run AND e.external_id = i.external_id);
    IF FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
    UPDATE examples e SET human_label = i.label, reviewed_at = now()
    FROM unnest(p_external_ids, p_labels) AS i (external_id, label)
    WHERE e.run_id = p_run AND e.external_id = i.external_id
    RETURNING e.id, NULL::text;
END;
$$;

-- The Dawid-Skene runs (one, or all when p_run is NULL) with a batch to decide: ready
-- examples, and none still voting. The reducer asks on every idle pass, so it reads the kept
-- batch counts, a few rows per batch and writer, not the examples.
CREATE OR REPLACE FUNCTION jury_dawid_skene_due(p_run bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT b.run_id
    FROM jury_batch_counts b
    -- = ANY (ARRAY(...)), not IN (...): the runs' ids then reach the index scan of run_counts
    -- inside the view, and only the Dawid-Skene runs' counters are summed.
    WHERE b.run_id = ANY (ARRAY(SELECT r.id FROM runs r
                                WHERE r.config #>> '{consensus,rule}' = 'dawid-skene' AND (p_run IS NULL OR r.id = p_run)))
      AND b.ready > 0 AND b.voting = 0
$$;
