-- Every change of state is a jury_* function: the transitions that were still SQL written in
-- Swift (enqueue's insert, the reducer's claim and verdicts, runs, process heartbeats) move
-- here, so that the schema alone says how rows change, and the store only calls.
--
-- Notification channels: 'jury_jobs' (jobs became claimable) and 'jury_ready' (examples
-- became ready for the reducer); the store listens on the same names.

-- Enqueue: moves the rows a session staged in its temporary table jury_incoming (external_id,
-- payload, human_label, source_label, line) into the run, one job per example and judge.
-- Ids already in the run are skipped; those whose line now says something else are counted,
-- with the first five in file order.
CREATE FUNCTION jury_enqueue_incoming(p_run bigint, p_batch text, p_judges text[], p_votes_needed int)
RETURNS TABLE (inserted_examples bigint, inserted_jobs bigint, changed_examples bigint, changed_sample text)
LANGUAGE plpgsql AS $$
BEGIN
    WITH added AS (
        INSERT INTO examples (run_id, batch, external_id, payload, human_label, source_label,
                              jobs_total, jobs_open, votes_needed)
        SELECT p_run, p_batch, i.external_id, i.payload, i.human_label, i.source_label,
               cardinality(p_judges), cardinality(p_judges), p_votes_needed
        FROM jury_incoming i ORDER BY i.line
        ON CONFLICT (run_id, external_id) DO NOTHING
        RETURNING id
    ), added_jobs AS (
        INSERT INTO jobs (run_id, example_id, judge)
        SELECT p_run, a.id, j.judge FROM added a CROSS JOIN unnest(p_judges) AS j (judge)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM added), (SELECT count(*) FROM added_jobs)
    INTO inserted_examples, inserted_jobs;

    SELECT count(*), coalesce(to_jsonb((array_agg(i.external_id ORDER BY i.line))[1:5]), '[]')::text
    INTO changed_examples, changed_sample
    FROM jury_incoming i
    JOIN examples e ON e.run_id = p_run AND e.external_id = i.external_id
    WHERE e.payload <> i.payload OR e.batch <> p_batch OR e.human_label IS DISTINCT FROM i.human_label
       OR e.source_label IS DISTINCT FROM i.source_label;

    IF inserted_jobs > 0 THEN
        PERFORM pg_notify('jury_jobs', '');
    END IF;
    RETURN NEXT;
END;
$$;

-- The reducer's claim: up to p_limit ready examples (of one run, or of all when p_run is NULL),
-- locked until the caller's transaction ends, with one row per vote (judge and label NULL for
-- an example without votes).
CREATE FUNCTION jury_claim_ready_examples(p_run bigint, p_limit int)
RETURNS TABLE (example_id bigint, run_id bigint, source_label text, judge text, label text)
LANGUAGE sql AS $$
    WITH ready AS (
        SELECT e.id, e.run_id, e.source_label FROM examples e
        WHERE e.state = 'ready' AND (p_run IS NULL OR e.run_id = p_run)
        ORDER BY e.id LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    SELECT r.id, r.run_id, r.source_label, v.judge, v.label
    FROM ready r LEFT JOIN votes v ON v.example_id = r.id
    ORDER BY r.id
$$;

-- The reducer's verdicts, and the examples' move to decided, in the caller's transaction (the
-- one that claimed them). A verdict already there is kept. Returns how many examples moved.
CREATE FUNCTION jury_record_verdicts(
    p_examples bigint[], p_runs bigint[], p_labels text[], p_statuses text[], p_agreements float8[],
    p_votes int[], p_rules text[], p_conflicts boolean[]
) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_decided int;
BEGIN
    INSERT INTO verdicts (example_id, run_id, label, status, agreement, votes, rule, conflicts_with_source)
    SELECT * FROM unnest(p_examples, p_runs, p_labels, p_statuses, p_agreements, p_votes, p_rules, p_conflicts)
    ON CONFLICT (example_id) DO NOTHING;
    UPDATE examples SET state = 'decided' WHERE id = ANY (p_examples);
    GET DIAGNOSTICS v_decided = ROW_COUNT;
    RETURN v_decided;
END;
$$;

-- Stores a run and a full rate-limit bucket (one second's worth, at least one request) for each
-- judge that has a limit. Returns the new run's id, or NULL when a run of that name exists.
CREATE FUNCTION jury_create_run(p_name text, p_config jsonb, p_limited_judges text[], p_per_second float8[])
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO runs (name, config) VALUES (p_name, p_config) ON CONFLICT (name) DO NOTHING RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO judge_limits (run_id, judge, per_second, burst, tokens)
    SELECT v_id, l.judge, l.per_second, greatest(1, l.per_second), greatest(1, l.per_second)
    FROM unnest(p_limited_judges, p_per_second) AS l (judge, per_second);
    RETURN v_id;
END;
$$;

-- Pauses, resumes or cancels a run. A cancelled run stays cancelled. Returns the state the run
-- had before (NULL for no such run); workers are woken when a run becomes active.
CREATE FUNCTION jury_set_run_state(p_run bigint, p_state text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_before text;
BEGIN
    SELECT state INTO v_before FROM runs WHERE id = p_run FOR UPDATE;
    IF v_before IS NULL OR (v_before = 'cancelled' AND p_state <> 'cancelled') THEN
        RETURN v_before;
    END IF;
    UPDATE runs SET state = p_state WHERE id = p_run;
    IF p_state = 'active' THEN
        PERFORM pg_notify('jury_jobs', '');
    END IF;
    RETURN v_before;
END;
$$;

-- Removes a run with everything it holds (examples, jobs, votes, verdicts, limits).
CREATE FUNCTION jury_delete_run(p_run bigint) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM runs WHERE id = p_run
$$;

-- Worker and reducer processes: registered at start, beating while alive, marked when stopped.
CREATE FUNCTION jury_register_process(p_id text, p_role text, p_host text, p_pid int) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO workers (id, role, host, pid) VALUES (p_id, p_role, p_host, p_pid)
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), stopped_at = NULL
$$;

CREATE FUNCTION jury_process_heartbeat(p_id text, p_in_flight int) RETURNS void
LANGUAGE sql AS $$
    UPDATE workers SET heartbeat_at = now(), in_flight = p_in_flight WHERE id = p_id
$$;

CREATE FUNCTION jury_process_stopped(p_id text) RETURNS void
LANGUAGE sql AS $$
    UPDATE workers SET stopped_at = now(), in_flight = 0 WHERE id = p_id
$$;
