-- A judge that no retry can cure (a bad key, an unknown model, a used-up quota) stops
-- fleet-wide: the first worker that meets the failure opens its breaker, and no worker claims
-- its jobs until a person closes it (`jury judge resume RUN JUDGE`). The other judges go on.
--
-- Cost: each vote's cost by the judge's prices, totals per run and judge kept as the votes
-- land, and an optional budget per run after which its jobs are no longer claimed.

CREATE TABLE judge_breakers (
    run_id     bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    judge      text NOT NULL,
    reason     text NOT NULL,
    opened_by  text,
    opened_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, judge)
);

-- Opens a judge's breaker; the first reason stays. Returns whether this call opened it.
CREATE FUNCTION jury_open_breaker(p_run bigint, p_judge text, p_reason text, p_owner text) RETURNS boolean
LANGUAGE sql AS $$
    WITH opened AS (
        INSERT INTO judge_breakers (run_id, judge, reason, opened_by) VALUES (p_run, p_judge, p_reason, p_owner)
        ON CONFLICT (run_id, judge) DO NOTHING
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM opened)
$$;

-- Closes it: the judge's pending jobs are claimable at once (not after the delay they were
-- given back with), and the workers are woken. Returns whether it was open.
CREATE FUNCTION jury_close_breaker(p_run bigint, p_judge text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_closed int;
BEGIN
    DELETE FROM judge_breakers WHERE run_id = p_run AND judge = p_judge;
    GET DIAGNOSTICS v_closed = ROW_COUNT;
    IF v_closed > 0 THEN
        UPDATE jobs SET run_after = now()
        WHERE run_id = p_run AND judge = p_judge AND state = 'pending' AND run_after > now();
        PERFORM pg_notify('jury_jobs', '');
    END IF;
    RETURN v_closed > 0;
END;
$$;

CREATE VIEW jury_breakers AS
SELECT r.name AS run, b.judge, b.reason, b.opened_by, b.opened_at
FROM judge_breakers b JOIN runs r ON r.id = b.run_id
ORDER BY b.opened_at;

ALTER TABLE votes ADD COLUMN cost_usd double precision;

-- Spend per run and judge, kept by jury_record_votes: the budget check reads one row per judge.
CREATE TABLE judge_spend (
    run_id    bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    judge     text NOT NULL,
    votes     bigint NOT NULL DEFAULT 0,
    cost_usd  double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, judge)
);

-- Whether a run may still spend: it has no budget, or has spent less than it.
CREATE FUNCTION jury_run_within_budget(p_run bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT (r.config ->> 'budget_usd') IS NULL
        OR coalesce((SELECT sum(s.cost_usd) FROM judge_spend s WHERE s.run_id = r.id), 0)
           < (r.config ->> 'budget_usd')::double precision
    FROM runs r WHERE r.id = p_run
$$;

-- The claim of 004, which now also skips judges whose breaker is open and runs over budget.
CREATE OR REPLACE FUNCTION jury_claim_jobs(
    p_owner text, p_lease_seconds double precision, p_runs bigint[], p_judges text[], p_limits int[]
) RETURNS TABLE (job_id bigint, run_id bigint, example_id bigint, judge text, attempts int, claim int,
                 transient_failures int, retrying_since timestamptz, external_id text, payload jsonb)
LANGUAGE sql AS $$
    WITH wanted AS (
        SELECT w.* FROM unnest(p_runs, p_judges, p_limits) AS w (run_id, judge, wanted)
        WHERE EXISTS (SELECT 1 FROM runs r WHERE r.id = w.run_id AND r.state = 'active')
          AND NOT EXISTS (SELECT 1 FROM judge_breakers b WHERE b.run_id = w.run_id AND b.judge = w.judge)
          AND jury_run_within_budget(w.run_id)
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
    CROSS JOIN LATERAL (SELECT x.external_id, x.payload FROM examples x WHERE x.id = c.example_id LIMIT 1) e
$$;

-- Records votes, as in 004, with what 006 added (cached tokens, model version, prompt hash)
-- and each vote's cost, which it adds to the judge's spend.
DROP FUNCTION jury_record_votes(text, bigint[], int[], text[], text[], int[], bigint[], bigint[]);
CREATE FUNCTION jury_record_votes(
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
        WHERE j.id = i.job_id AND j.id = ANY (p_jobs) AND j.state = 'running' AND j.claims = i.claim
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

-- Cost per run and judge, with the run's budget.
CREATE VIEW jury_costs AS
SELECT r.name AS run, s.judge, s.votes, s.cost_usd,
       sum(s.cost_usd) OVER (PARTITION BY r.id) AS run_cost_usd,
       (r.config ->> 'budget_usd')::double precision AS budget_usd
FROM judge_spend s JOIN runs r ON r.id = s.run_id
ORDER BY r.name, s.judge;
