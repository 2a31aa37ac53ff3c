-- A vote replaces its job: recording it deletes the job's row instead of marking it done.
--
-- A done job told nothing its vote does not: the vote keeps the example, judge, run and
-- attempts. Yet marking it done wrote a new version of the row and an entry in two of its
-- indexes, and left the row in the queue's table for good; a delete only marks the row, and
-- vacuum gives the space back to the jobs still to come. pgbench running Jury's claim and
-- record (4 clients, 128 jobs a claim, four runs alternating) went from 27,369-32,186 to
-- 33,711-37,904 votes/s.
--
-- What read done jobs reads votes now:
-- - How many times the job was claimed before its vote (calls given up and called again):
--   the vote keeps it.
-- - The run's counts: 'jobs.done' is counted as votes are inserted and deleted. Done rows
--   written before this migration stay until `jury run purge`, and no longer count (their
--   votes do).
-- - Invalid answers, kept for people and for calibration, found their example through their
--   job, and went with it. They now carry the example, and go with it or with a purge.

-- NULL for votes recorded before this migration.
ALTER TABLE votes ADD COLUMN claims int;

ALTER TABLE invalid_answers ADD COLUMN example_id bigint;
UPDATE invalid_answers a SET example_id = j.example_id FROM jobs j WHERE j.id = a.job_id;
ALTER TABLE invalid_answers ALTER COLUMN example_id SET NOT NULL;
ALTER TABLE invalid_answers DROP CONSTRAINT invalid_answers_job_id_fkey;
DROP INDEX invalid_answers_job;
CREATE INDEX invalid_answers_example ON invalid_answers (example_id);

CREATE OR REPLACE FUNCTION jury_record_invalid_answers(
    p_owner text, p_jobs bigint[], p_claims int[], p_answers text[], p_errors text[]
) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO invalid_answers (job_id, claim, run_id, example_id, judge, answer, error)
    SELECT j.id, i.claim, j.run_id, j.example_id, j.judge, i.answer, i.error
    FROM unnest(p_jobs, p_claims, p_answers, p_errors) AS i (job_id, claim, answer, error)
    JOIN jobs j ON j.id = i.job_id AND j.claims = i.claim AND j.lease_owner = p_owner
    ON CONFLICT (job_id, claim) DO NOTHING
$$;

CREATE OR REPLACE VIEW jury_invalid_answers AS
SELECT r.name AS run, a.judge, count(*) OVER (PARTITION BY a.run_id, a.judge) AS invalid_answers,
       e.external_id AS example, a.error, a.answer, a.created_at
FROM invalid_answers a
JOIN runs r ON r.id = a.run_id
JOIN examples e ON e.id = a.example_id
ORDER BY a.created_at DESC;

-- As in 023, with the examples' invalid answers.
CREATE OR REPLACE FUNCTION jury_delete_work_of_examples() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM jobs j USING old_examples o WHERE j.example_id = o.id;
    DELETE FROM votes v USING old_examples o WHERE v.example_id = o.id;
    DELETE FROM invalid_answers a USING old_examples o WHERE a.example_id = o.id;
    RETURN NULL;
END
$$;

-- As in 014: a purge deletes the queue's bookkeeping, the invalid answers with it.
CREATE OR REPLACE FUNCTION jury_purge_jobs(p_run bigint, p_after bigint, p_limit int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    chunk bigint[];
BEGIN
    SELECT array_agg(x.id ORDER BY x.id) INTO chunk FROM (
        SELECT e.id FROM examples e WHERE e.run_id = p_run AND e.id > p_after ORDER BY e.id LIMIT p_limit
    ) x;
    IF chunk IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('jury.purging', 'on', true);
    DELETE FROM jobs j WHERE j.example_id = ANY (chunk);
    PERFORM set_config('jury.purging', 'off', true);
    DELETE FROM invalid_answers a WHERE a.example_id = ANY (chunk);
    RETURN chunk[cardinality(chunk)];
END
$$;

-- As in 028, deleting the recorded jobs.
CREATE OR REPLACE FUNCTION jury_record_votes(
    p_owner text, p_jobs bigint[], p_claims int[], p_labels text[], p_rationales text[], p_latency_ms int[],
    p_prompt_tokens bigint[], p_completion_tokens bigint[], p_cached_tokens bigint[], p_model_versions text[],
    p_prompt_hashes text[], p_costs double precision[]
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    done_jobs bigint[];
    done_examples bigint[];
BEGIN
    PERFORM jury_lock_examples_of(p_jobs);
    WITH input AS (
        SELECT * FROM unnest(p_jobs, p_claims, p_labels, p_rationales, p_latency_ms, p_prompt_tokens,
                             p_completion_tokens, p_cached_tokens, p_model_versions, p_prompt_hashes, p_costs)
            AS i (job_id, claim, label, rationale, latency_ms, prompt_tokens, completion_tokens, cached_tokens,
                  model_version, prompt_hash, cost)
    ), finished AS (
        -- Only the claim that holds the job may record it: a job given back or taken over since
        -- has another claim number, and a job recorded already is gone.
        DELETE FROM jobs j
        USING input i
        -- (SELECT 'running'): see the head of 028.
        WHERE j.id = i.job_id AND j.id = ANY (p_jobs) AND j.state = (SELECT 'running'::text) AND j.claims = i.claim
        RETURNING j.id, j.example_id, j.run_id, j.judge, j.attempts, j.claims
    ), inserted AS (
        INSERT INTO votes (example_id, judge, run_id, label, rationale, latency_ms, prompt_tokens,
                           completion_tokens, cached_tokens, model_version, prompt_hash, cost_usd, attempts, claims)
        SELECT f.example_id, f.judge, f.run_id, i.label, i.rationale, i.latency_ms, i.prompt_tokens,
               i.completion_tokens, i.cached_tokens, i.model_version, i.prompt_hash, i.cost, f.attempts, f.claims
        FROM finished f JOIN input i ON i.job_id = f.id
        RETURNING run_id, judge, cost_usd
    ), spent AS (
        INSERT INTO judge_spend AS s (run_id, judge, votes, cost_usd)
        SELECT v.run_id, v.judge, count(*), coalesce(sum(v.cost_usd), 0) FROM inserted v GROUP BY v.run_id, v.judge
        ORDER BY v.run_id, v.judge
        ON CONFLICT (run_id, judge) DO UPDATE
        SET votes = s.votes + excluded.votes, cost_usd = s.cost_usd + excluded.cost_usd
    )
    SELECT array_agg(f.id), array_agg(f.example_id) INTO done_jobs, done_examples FROM finished f;
    PERFORM jury_settle_examples(done_examples, false);
    RETURN QUERY SELECT unnest(done_jobs);
END
$$;

-- As in 030, but a deleted done job (one from before this migration) leaves the counts to its vote.
CREATE OR REPLACE FUNCTION jury_count_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- `jury run purge` removes finished jobs without changing what the run counted.
    IF current_setting('jury.purging', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- Spelled out rather than through jury_job_counters: this runs for every claim.
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT d.run_id, d.judge, d.counter, pg_backend_pid(), sum(d.delta)
        FROM (
            SELECT n.run_id, n.judge, 'jobs.' || n.state AS counter, 1 AS delta FROM new_jobs n
            UNION ALL
            SELECT o.run_id, o.judge, 'jobs.' || o.state, -1 FROM old_jobs o
            UNION ALL
            SELECT n.run_id, n.judge, 'jobs.retrying', 1 FROM new_jobs n
            WHERE n.state = 'pending' AND (n.attempts > 0 OR n.retrying_since IS NOT NULL)
            UNION ALL
            SELECT o.run_id, o.judge, 'jobs.retrying', -1 FROM old_jobs o
            WHERE o.state = 'pending' AND (o.attempts > 0 OR o.retrying_since IS NOT NULL)
        ) d
        GROUP BY d.run_id, d.judge, d.counter
        HAVING sum(d.delta) <> 0
        ORDER BY d.run_id, d.judge, d.counter
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT o.run_id, o.judge, k.counter, pg_backend_pid(), -count(*)
        FROM old_jobs o CROSS JOIN LATERAL unnest(jury_job_counters(o.state, o.attempts, o.retrying_since)) k (counter)
        WHERE o.state <> 'done' AND EXISTS (SELECT 1 FROM runs r WHERE r.id = o.run_id)
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

-- As in 023, and each vote counts a done job.
CREATE OR REPLACE FUNCTION jury_count_votes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT d.run_id, d.judge, d.counter, pg_backend_pid(), sum(d.n)
        FROM (
            SELECT n.run_id, n.judge, 'jobs.done' AS counter, 1 AS n FROM new_votes n
            UNION ALL
            SELECT n.run_id, n.judge, 'votes.tokens', coalesce(n.prompt_tokens, 0) + coalesce(n.completion_tokens, 0)
            FROM new_votes n
            UNION ALL
            SELECT n.run_id, n.judge, 'votes.minute.' || to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI'), 1
            FROM new_votes n
        ) d
        GROUP BY d.run_id, d.judge, d.counter
        HAVING sum(d.n) <> 0
        ORDER BY d.run_id, d.judge, d.counter
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT d.run_id, d.judge, d.counter, pg_backend_pid(), -sum(d.n)
        FROM (
            SELECT o.run_id, o.judge, 'jobs.done' AS counter, 1 AS n FROM old_votes o
            UNION ALL
            SELECT o.run_id, o.judge, 'votes.tokens', coalesce(o.prompt_tokens, 0) + coalesce(o.completion_tokens, 0)
            FROM old_votes o
            UNION ALL
            SELECT o.run_id, o.judge, 'votes.minute.' || to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI'), 1
            FROM old_votes o
            -- Minutes older than an hour are no longer kept (jury_compact_counts drops them).
            WHERE to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI')
                  >= to_char((now() - interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI')
        ) d
        WHERE EXISTS (SELECT 1 FROM runs r WHERE r.id = d.run_id)
        GROUP BY d.run_id, d.judge, d.counter
        HAVING sum(d.n) <> 0
        ORDER BY d.run_id, d.judge, d.counter
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

-- As in 020, with done jobs counted from votes.
CREATE OR REPLACE VIEW jury_counts_from_tables AS
SELECT j.run_id, j.judge, k.counter, count(*)::bigint AS n
FROM jobs j CROSS JOIN LATERAL unnest(jury_job_counters(j.state, j.attempts, j.retrying_since)) k (counter)
WHERE j.state <> 'done'
GROUP BY 1, 2, 3
UNION ALL
SELECT v.run_id, v.judge, 'jobs.done', count(*)
FROM votes v GROUP BY 1, 2, 3
UNION ALL
SELECT e.run_id, '', k.counter, count(*)
FROM examples e
CROSS JOIN LATERAL unnest(jury_example_counters(e.state, e.jobs_cancelled)
                          || ARRAY[jury_batch_counter('examples', e.batch), jury_batch_counter(e.state, e.batch)]) k (counter)
GROUP BY 1, 2, 3
UNION ALL
SELECT v.run_id, '', k.counter, count(*)
FROM verdicts v JOIN examples e ON e.id = v.example_id
CROSS JOIN LATERAL unnest(jury_verdict_counters(v.status, v.outcome, v.decided_by)
                          || jury_batch_counter(v.status, e.batch)) k (counter)
GROUP BY 1, 2, 3
UNION ALL
SELECT v.run_id, v.judge, 'votes.tokens', sum(coalesce(v.prompt_tokens, 0) + coalesce(v.completion_tokens, 0))::bigint
FROM votes v GROUP BY 1, 2 HAVING sum(coalesce(v.prompt_tokens, 0) + coalesce(v.completion_tokens, 0)) <> 0
UNION ALL
SELECT v.run_id, v.judge, 'votes.minute.' || to_char(v.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI'),
       count(*)
FROM votes v
WHERE to_char(v.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI')
      >= to_char((now() - interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI')
GROUP BY 1, 2, 3;
