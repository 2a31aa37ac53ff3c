-- What a judge's answer says beyond its label: cached tokens, the model version the provider
-- reports, and a fingerprint of the prompt sent (two votes of one example that saw different
-- prompts have different hashes). Answers that could not be read are kept for people.

ALTER TABLE votes
    ADD COLUMN cached_tokens bigint,
    ADD COLUMN model_version text,
    ADD COLUMN prompt_hash text;

-- Records votes, as in 004, with the new columns.
DROP FUNCTION jury_record_votes(text, bigint[], int[], text[], text[], int[], bigint[], bigint[]);
CREATE FUNCTION jury_record_votes(
    p_owner text, p_jobs bigint[], p_claims int[], p_labels text[], p_rationales text[], p_latency_ms int[],
    p_prompt_tokens bigint[], p_completion_tokens bigint[], p_cached_tokens bigint[], p_model_versions text[],
    p_prompt_hashes text[]
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    done_jobs bigint[];
    done_examples bigint[];
BEGIN
    PERFORM jury_lock_examples_of(p_jobs);
    WITH input AS (
        SELECT * FROM unnest(p_jobs, p_claims, p_labels, p_rationales, p_latency_ms, p_prompt_tokens,
                             p_completion_tokens, p_cached_tokens, p_model_versions, p_prompt_hashes)
            AS i (job_id, claim, label, rationale, latency_ms, prompt_tokens, completion_tokens, cached_tokens,
                  model_version, prompt_hash)
    ), finished AS (
        UPDATE jobs j
        SET state = 'done', lease_owner = NULL, lease_expires_at = NULL, last_error = NULL,
            transient_failures = 0, retrying_since = NULL, updated_at = now()
        FROM input i
        WHERE j.id = i.job_id AND j.id = ANY (p_jobs) AND j.state = 'running' AND j.claims = i.claim
        RETURNING j.id, j.example_id, j.run_id, j.judge, j.attempts
    ), inserted AS (
        INSERT INTO votes (example_id, judge, run_id, label, rationale, latency_ms, prompt_tokens,
                           completion_tokens, cached_tokens, model_version, prompt_hash, attempts)
        SELECT f.example_id, f.judge, f.run_id, i.label, i.rationale, i.latency_ms, i.prompt_tokens,
               i.completion_tokens, i.cached_tokens, i.model_version, i.prompt_hash, f.attempts
        FROM finished f JOIN input i ON i.job_id = f.id
    )
    SELECT array_agg(f.id), array_agg(f.example_id) INTO done_jobs, done_examples FROM finished f;
    PERFORM jury_settle_examples(done_examples, false);
    RETURN QUERY SELECT unnest(done_jobs);
END
$$;

-- Answers that were not a valid vote (not JSON, no label, a label outside the taxonomy), with
-- what the judge said (truncated), for a person to read. One row per claim: recording the same
-- outcome twice (a retried batch) counts it once.
CREATE TABLE invalid_answers (
    job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    claim       int NOT NULL,
    run_id      bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    judge       text NOT NULL,
    answer      text,
    error       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, claim)
);
CREATE INDEX invalid_answers_run_judge ON invalid_answers (run_id, judge);

-- Keeps the invalid answers of claims the caller still holds.
CREATE FUNCTION jury_record_invalid_answers(
    p_owner text, p_jobs bigint[], p_claims int[], p_answers text[], p_errors text[]
) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO invalid_answers (job_id, claim, run_id, judge, answer, error)
    SELECT j.id, i.claim, j.run_id, j.judge, i.answer, i.error
    FROM unnest(p_jobs, p_claims, p_answers, p_errors) AS i (job_id, claim, answer, error)
    JOIN jobs j ON j.id = i.job_id AND j.claims = i.claim AND j.lease_owner = p_owner
    ON CONFLICT (job_id, claim) DO NOTHING
$$;

-- Invalid answers per run and judge, the latest first: what a person reads to fix a prompt.
CREATE VIEW jury_invalid_answers AS
SELECT r.name AS run, a.judge, count(*) OVER (PARTITION BY a.run_id, a.judge) AS invalid_answers,
       e.external_id AS example, a.error, a.answer, a.created_at
FROM invalid_answers a
JOIN runs r ON r.id = a.run_id
JOIN jobs j ON j.id = a.job_id
JOIN examples e ON e.id = j.example_id
ORDER BY a.created_at DESC;
