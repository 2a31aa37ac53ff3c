-- Fencing by claim, retries that outage does not use up, and values that always fit.
--
-- * Every claim of a job takes a new token (jobs.claims, never decreasing). Recording,
--   releasing and renewing name the token, so the late outcome of an earlier claim (a worker
--   that stalled past its lease) can never touch a newer claim of the same job.
-- * Failures that waiting cures (429, 5xx, timeouts, dropped connections) no longer use up
--   attempts: a job keeps retrying them from retrying_since until the run's give-up time.
--   `attempts` counts the answers that were wrong.
-- * Token counts are bigint: a provider's usage is untrusted input.
-- * Claims check that the run is active and the example still voting, so pause and cancel
--   stop claims at once.

ALTER TABLE jobs
    ADD COLUMN claims int NOT NULL DEFAULT 0,
    -- Consecutive failures that waiting cures, and since when: the backoff and the give-up time.
    ADD COLUMN transient_failures int NOT NULL DEFAULT 0,
    ADD COLUMN retrying_since timestamptz;

-- The view reads the token counts: it goes while their type changes, and comes back below.
DROP VIEW jury_judge_health;
ALTER TABLE votes
    ALTER COLUMN prompt_tokens TYPE bigint,
    ALTER COLUMN completion_tokens TYPE bigint;

-- How often a provider asked for a Retry-After longer than the run allows, per judge.
CREATE TABLE judge_retry_caps (
    run_id           bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    judge            text NOT NULL,
    capped           bigint NOT NULL,
    longest_asked    double precision NOT NULL,
    last_capped_at   timestamptz NOT NULL,
    PRIMARY KEY (run_id, judge)
);

DROP FUNCTION jury_claim_jobs(text, double precision, bigint[], text[], int[]);
DROP FUNCTION jury_renew_leases(text, double precision, bigint[]);
DROP FUNCTION jury_record_votes(text, bigint[], text[], text[], int[], int[], int[]);
DROP FUNCTION jury_release_jobs(text, bigint[], text[], double precision[], boolean[], boolean[]);
DROP FUNCTION jury_retry_failed(bigint, text, text);

-- Claims up to p_limits[i] pending jobs of judge p_judges[i] in run p_runs[i] for p_owner,
-- leased for p_lease_seconds, each under a new claim token. Only runs that are active and
-- examples still voting. Skips rows other workers hold, so claims never wait.
CREATE FUNCTION jury_claim_jobs(
    p_owner text, p_lease_seconds double precision, p_runs bigint[], p_judges text[], p_limits int[]
) RETURNS TABLE (job_id bigint, run_id bigint, example_id bigint, judge text, attempts int, claim int,
                 transient_failures int, retrying_since timestamptz, external_id text, payload jsonb)
LANGUAGE sql AS $$
    WITH wanted AS (
        SELECT w.* FROM unnest(p_runs, p_judges, p_limits) AS w (run_id, judge, wanted)
        WHERE EXISTS (SELECT 1 FROM runs r WHERE r.id = w.run_id AND r.state = 'active')
    ), picked AS (
        SELECT c.id
        FROM wanted w
        CROSS JOIN LATERAL (
            SELECT j.id FROM jobs j
            WHERE j.state = 'pending' AND j.run_id = w.run_id AND j.judge = w.judge AND j.run_after <= now()
              AND EXISTS (SELECT 1 FROM examples x WHERE x.id = j.example_id AND x.state = 'voting')
            ORDER BY j.run_after, j.id
            LIMIT w.wanted
            FOR UPDATE SKIP LOCKED
        ) c
    ), claimed AS (
        UPDATE jobs j
        SET state = 'running', attempts = j.attempts + 1, claims = j.claims + 1, lease_owner = p_owner,
            lease_expires_at = now() + make_interval(secs => p_lease_seconds), updated_at = now()
        FROM picked
        WHERE j.id = picked.id AND j.id = ANY (ARRAY(SELECT id FROM picked))
        RETURNING j.id, j.run_id, j.example_id, j.judge, j.attempts, j.claims, j.transient_failures,
                  j.retrying_since
    )
    SELECT c.id, c.run_id, c.example_id, c.judge, c.attempts, c.claims, c.transient_failures, c.retrying_since,
           e.external_id, e.payload
    FROM claimed c
    -- LIMIT 1 keeps this a primary-key lookup per job rather than a scan of all examples.
    CROSS JOIN LATERAL (SELECT x.external_id, x.payload FROM examples x WHERE x.id = c.example_id LIMIT 1) e
$$;

-- Extends the leases of the claims (p_jobs[i], p_claims[i]) still running. Returns the jobs
-- whose claim still holds.
CREATE FUNCTION jury_renew_leases(
    p_owner text, p_lease_seconds double precision, p_jobs bigint[], p_claims int[]
) RETURNS SETOF bigint
LANGUAGE sql AS $$
    WITH held AS (
        SELECT j.id FROM jobs j
        JOIN unnest(p_jobs, p_claims) AS i (job_id, claim) ON i.job_id = j.id
        WHERE j.id = ANY (p_jobs) AND j.state = 'running' AND j.claims = i.claim AND j.lease_owner = p_owner
        FOR UPDATE OF j SKIP LOCKED
    )
    UPDATE jobs j SET lease_expires_at = now() + make_interval(secs => p_lease_seconds)
    FROM held WHERE j.id = held.id
    RETURNING j.id
$$;

-- Records the votes of the claims (p_jobs[i], p_claims[i]) still running, completes those
-- jobs, and marks their examples ready when it was their last open job: one transaction.
-- A claim that no longer holds (its lease was taken back, the job claimed again) is left
-- alone and not returned.
CREATE FUNCTION jury_record_votes(
    p_owner text, p_jobs bigint[], p_claims int[], p_labels text[], p_rationales text[], p_latency_ms int[],
    p_prompt_tokens bigint[], p_completion_tokens bigint[]
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    done_jobs bigint[];
    done_examples bigint[];
BEGIN
    PERFORM jury_lock_examples_of(p_jobs);
    WITH input AS (
        SELECT * FROM unnest(p_jobs, p_claims, p_labels, p_rationales, p_latency_ms, p_prompt_tokens,
                             p_completion_tokens)
            AS i (job_id, claim, label, rationale, latency_ms, prompt_tokens, completion_tokens)
    ), finished AS (
        UPDATE jobs j
        SET state = 'done', lease_owner = NULL, lease_expires_at = NULL, last_error = NULL,
            transient_failures = 0, retrying_since = NULL, updated_at = now()
        FROM input i
        WHERE j.id = i.job_id AND j.id = ANY (p_jobs) AND j.state = 'running' AND j.claims = i.claim
        RETURNING j.id, j.example_id, j.run_id, j.judge, j.attempts
    ), inserted AS (
        INSERT INTO votes (example_id, judge, run_id, label, rationale, latency_ms, prompt_tokens,
                           completion_tokens, attempts)
        SELECT f.example_id, f.judge, f.run_id, i.label, i.rationale, i.latency_ms, i.prompt_tokens,
               i.completion_tokens, f.attempts
        FROM finished f JOIN input i ON i.job_id = f.id
    )
    SELECT array_agg(f.id), array_agg(f.example_id) INTO done_jobs, done_examples FROM finished f;
    PERFORM jury_settle_examples(done_examples, false);
    RETURN QUERY SELECT unnest(done_jobs);
END
$$;

-- Gives back the claims (p_jobs[i], p_claims[i]) after a call that gave no vote. p_kinds[i] says
-- what the failure was:
--   'answer'    the judge answered wrongly (unparseable, outside the taxonomy, refused the
--               request): the attempt counts, and the outage streak, if any, is over;
--   'transient' waiting cures it (429, 5xx, timeout, dropped connection): the attempt is
--               refunded and the streak grows (retrying_since is when it began);
--   'returned'  the judge was never really asked (the worker stopped, or cannot call it):
--               the attempt is refunded and the streak left as it was.
-- Jobs with p_final true fail for good and their examples are settled; the others go back to
-- pending after p_delay_seconds. p_capped_retry_after[i], when set, is a Retry-After the run's
-- cap cut short: counted per judge in judge_retry_caps. Returns the jobs whose claim still held.
CREATE FUNCTION jury_release_jobs(
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
        WHERE j.id = i.job_id AND j.id = ANY (p_jobs) AND j.state = 'running' AND j.claims = i.claim
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

-- Puts up to p_limit failed jobs of a run (optionally one batch, one judge) back to pending
-- with fresh attempts; call it until it returns 0. Chunks keep each transaction short, so a
-- large retry never holds the locks that lease renewals and the reaper need. Their examples
-- vote again: a verdict they already had is withdrawn and decided anew.
CREATE FUNCTION jury_retry_failed(p_run bigint, p_batch text, p_judge text, p_limit int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    failed bigint[];
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
    PERFORM pg_notify('jury_jobs', '');
    RETURN retried;
END
$$;

-- Judge health, now with jobs retrying after outages (their attempts were refunded) and the
-- Retry-After values the run's cap cut short.
CREATE VIEW jury_judge_health AS
SELECT r.name AS run,
       j.judge,
       count(*) FILTER (WHERE j.state = 'pending') AS pending,
       count(*) FILTER (WHERE j.state = 'running') AS running,
       count(*) FILTER (WHERE j.state = 'done') AS done,
       count(*) FILTER (WHERE j.state = 'failed') AS failed,
       count(*) FILTER (WHERE j.state = 'pending' AND (j.attempts > 0 OR j.retrying_since IS NOT NULL))
           AS waiting_to_retry,
       (SELECT round(avg(v.latency_ms)) FROM votes v WHERE v.run_id = r.id AND v.judge = j.judge) AS avg_latency_ms,
       (SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY v.latency_ms)
          FROM votes v WHERE v.run_id = r.id AND v.judge = j.judge) AS p95_latency_ms,
       (SELECT sum(v.prompt_tokens + v.completion_tokens)
          FROM votes v WHERE v.run_id = r.id AND v.judge = j.judge) AS tokens,
       (SELECT e.last_error FROM jobs e
          WHERE e.run_id = r.id AND e.judge = j.judge AND e.last_error IS NOT NULL
          ORDER BY e.updated_at DESC LIMIT 1) AS last_error,
       min(j.retrying_since) FILTER (WHERE j.state IN ('pending', 'running')) AS retrying_since,
       (SELECT c.capped FROM judge_retry_caps c WHERE c.run_id = r.id AND c.judge = j.judge) AS retry_after_capped,
       (SELECT c.longest_asked FROM judge_retry_caps c WHERE c.run_id = r.id AND c.judge = j.judge)
           AS longest_retry_after_asked
FROM jobs j
JOIN runs r ON r.id = j.run_id
GROUP BY r.id, r.name, j.judge;
