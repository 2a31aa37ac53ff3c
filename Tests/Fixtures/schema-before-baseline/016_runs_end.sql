-- Runs end: a run whose examples are all decided becomes `done`, and `jury_runs` lists every
-- run with its counts and cost.
--
-- The reducer calls jury_finish_runs when it has nothing left to decide. New examples, or
-- failed jobs put back to pending, make a done run active again. Both sides lock the run's
-- row before they look at or change its examples, so a run never ends while a transaction
-- is adding work to it: the finisher counts only once it holds the lock, in a statement that
-- sees whatever committed before.
ALTER TABLE runs ADD COLUMN finished_at timestamptz;

-- Whether a run has examples and none left to decide, by the kept counts.
CREATE FUNCTION jury_run_complete(p_run bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(c.n) FILTER (WHERE c.counter = 'examples'), 0) > 0
       AND coalesce(sum(c.n) FILTER (WHERE c.counter IN ('examples.voting', 'examples.ready')), 0) = 0
    FROM run_counts c WHERE c.run_id = p_run AND c.judge = ''
$$;

-- Marks done every active run that has examples and none left to decide; returns their names.
-- A run that looks complete is locked, then counted again: a transaction that added work
-- meanwhile held the lock until it committed, so the second count sees that work. A run
-- locked right now is skipped, for the next call.
CREATE FUNCTION jury_finish_runs() RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    v_run bigint;
    v_name text;
BEGIN
    FOR v_run IN SELECT r.id FROM runs r WHERE r.state = 'active' AND jury_run_complete(r.id) ORDER BY r.id LOOP
        SELECT r.name INTO v_name FROM runs r WHERE r.id = v_run AND r.state = 'active'
        FOR NO KEY UPDATE SKIP LOCKED;
        IF v_name IS NOT NULL AND jury_run_complete(v_run) THEN
            UPDATE runs SET state = 'done', finished_at = now() WHERE id = v_run;
            RETURN NEXT v_name;
        END IF;
    END LOOP;
END;
$$;

-- Adding work to a run: lock it first, and make it active again if it had ended.
CREATE FUNCTION jury_lock_run_for_work(p_run bigint) RETURNS void
LANGUAGE sql AS $$
    SELECT 1 FROM runs WHERE id = p_run FOR NO KEY UPDATE
$$;

CREATE FUNCTION jury_reopen_run(p_run bigint) RETURNS void
LANGUAGE sql AS $$
    UPDATE runs SET state = 'active', finished_at = NULL WHERE id = p_run AND state = 'done'
$$;

-- The two ways work is added keep their names and arguments, now with the lock and the reopening.
ALTER FUNCTION jury_enqueue_lines(bigint, text, text[], int[], int) RENAME TO jury_insert_lines;

CREATE FUNCTION jury_enqueue_lines(p_run bigint, p_batch text, p_judges text[], p_orders int[], p_votes_needed int)
RETURNS TABLE (inserted_examples bigint, inserted_jobs bigint, changed_examples bigint, changed_sample text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM jury_lock_run_for_work(p_run);
    SELECT i.inserted_examples, i.inserted_jobs, i.changed_examples, i.changed_sample
    INTO inserted_examples, inserted_jobs, changed_examples, changed_sample
    FROM jury_insert_lines(p_run, p_batch, p_judges, p_orders, p_votes_needed) i;
    IF inserted_examples > 0 THEN
        PERFORM jury_reopen_run(p_run);
    END IF;
    RETURN NEXT;
END;
$$;

ALTER FUNCTION jury_retry_failed(bigint, text, text, int) RENAME TO jury_reset_failed_jobs;

CREATE FUNCTION jury_retry_failed(p_run bigint, p_batch text, p_judge text, p_limit int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_retried int;
BEGIN
    PERFORM jury_lock_run_for_work(p_run);
    v_retried := jury_reset_failed_jobs(p_run, p_batch, p_judge, p_limit);
    IF v_retried > 0 THEN
        PERFORM jury_reopen_run(p_run);
    END IF;
    RETURN v_retried;
END;
$$;

-- Every run with its state, progress, verdicts and spend: what `jury run list` prints.
CREATE VIEW jury_runs AS
SELECT r.name AS run,
       r.state,
       p.examples, p.voting + p.ready AS undecided, p.decided, p.agreed, p.disagreed, p.insufficient,
       p.failed AS jobs_failed,
       coalesce((SELECT sum(s.cost_usd) FROM judge_spend s WHERE s.run_id = r.id), 0) AS cost_usd,
       (r.config ->> 'budget_usd')::double precision AS budget_usd,
       r.created_at,
       r.finished_at
FROM runs r
JOIN jury_run_progress p ON p.run = r.name;
