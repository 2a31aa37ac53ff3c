-- Records and releases find their jobs by id.
--
-- Their UPDATE asked for jobs by id and state 'running', and the planner read them through
-- jobs_leased, the partial index of running jobs: its statistics, taken when few jobs ran,
-- said it held about one row. It lists every running job, and until vacuum every job that
-- ever ran, so each record walked all of them to find its own. With the state compared to
-- a subquery, the index's predicate cannot be proven and the jobs are read by primary key.
-- pgbench running Jury's claim and record (4 clients, 128 jobs a claim) went from
-- 9,961-10,750 to 11,848-12,777 jobs/s, three runs each, alternating.

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
        UPDATE jobs j
        SET state = 'done', lease_owner = NULL, lease_expires_at = NULL, last_error = NULL,
            transient_failures = 0, retrying_since = NULL, updated_at = now()
        FROM input i
        -- (SELECT 'running'): see the head of 028.
        WHERE j.id = i.job_id AND j.id = ANY (p_jobs) AND j.state = (SELECT 'running'::text) AND j.claims = i.claim
        RETURNING j.id, j.example_id, j.run_id, j.judge, j.attempts
    ), inserted AS (
        INSERT INTO votes (example_id, judge, run_id, label, rationale, latency_ms, prompt_tokens,
                           completion_tokens, cached_tokens, model_version, prompt_hash, cost_usd, attempts)
        SELECT f.example_id, f.judge, f.run_id, i.label, i.rationale, i.latency_ms, i.prompt_tokens,
               i.completion_tokens, i.cached_tokens, i.model_version, i.prompt_hash, i.cost, f.attempts
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

CREATE OR REPLACE FUNCTION jury_release_jobs(
    p_owner text, p_jobs bigint[], p_claims int[], p_kinds text[], p_errors text[],
    p_delay_seconds double precision[], p_final boolean[], p_capped_retry_after double precision[]
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    released_jobs bigint[];
    failed_examples bigint[];
BEGIN
    IF EXISTS (SELECT 1 FROM unnest(p_kinds) AS k (kind) WHERE k.kind NOT IN ('answer', 'transient', 'returned')) THEN
        RAISE EXCEPTION 'jury_release_jobs: a kind is not one of answer, transient, returned';
    END IF;
    PERFORM jury_lock_examples_of(p_jobs);
    WITH input AS (
        SELECT * FROM unnest(p_jobs, p_claims, p_kinds, p_errors, p_delay_seconds, p_final, p_capped_retry_after)
            AS i (job_id, claim, kind, error, delay, final, capped)
    ), released AS (
        UPDATE jobs j
        SET state = CASE WHEN i.final THEN 'failed' ELSE 'pending' END,
            attempts = CASE WHEN i.kind = 'answer' THEN j.attempts ELSE j.attempts - 1 END,
            transient_failures = CASE i.kind WHEN 'answer' THEN 0
                                             WHEN 'transient' THEN j.transient_failures + 1
                                             ELSE j.transient_failures END,
            retrying_since = CASE i.kind WHEN 'answer' THEN NULL
                                         WHEN 'transient' THEN coalesce(j.retrying_since, now())
                                         ELSE j.retrying_since END,
            run_after = now() + make_interval(secs => i.delay),
            lease_owner = NULL, lease_expires_at = NULL, last_error = i.error, updated_at = now()
        FROM input i
        -- (SELECT 'running'): see the head of 028.
        WHERE j.id = i.job_id AND j.id = ANY (p_jobs) AND j.state = (SELECT 'running'::text) AND j.claims = i.claim
        RETURNING j.id, j.example_id, j.run_id, j.judge, i.final, i.capped
    ), caps AS (
        INSERT INTO judge_retry_caps AS c (run_id, judge, capped, longest_asked, last_capped_at)
        SELECT r.run_id, r.judge, count(*), max(r.capped), now()
        FROM released r WHERE r.capped IS NOT NULL
        GROUP BY r.run_id, r.judge
        ON CONFLICT (run_id, judge) DO UPDATE
        SET capped = c.capped + excluded.capped, longest_asked = greatest(c.longest_asked, excluded.longest_asked),
            last_capped_at = excluded.last_capped_at
    )
    SELECT array_agg(r.id), array_agg(r.example_id) FILTER (WHERE r.final) INTO released_jobs, failed_examples
    FROM released r;
    PERFORM jury_settle_examples(failed_examples, true);
    RETURN QUERY SELECT unnest(released_jobs);
END
$$;
