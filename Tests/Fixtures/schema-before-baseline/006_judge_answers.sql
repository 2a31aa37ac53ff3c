-- What a judge's answer says beyond its label: cached tokens, the model version the provider
-- reports, and a fingerprint of the prompt sent (two votes of one example that saw different
-- prompts have different hashes). Answers that could not be read are kept for people.

ALTER TABLE votes
    ADD COLUMN cached_tokens bigint,
    ADD COLUMN model_version text,
    ADD COLUMN prompt_hash text;

-- jury_record_votes stores them from 007 on, with each vote's cost.

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
