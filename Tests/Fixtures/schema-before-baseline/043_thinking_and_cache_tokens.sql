-- Every kind of token a provider bills, kept per vote and summed per judge.
--
-- Reasoning models think before they answer, and the thinking is billed as output; Anthropic
-- bills input written to its prompt cache at a premium. Each vote now keeps the tokens written
-- to the cache and the thinking tokens beside the input, cached and output tokens it had
-- (completion_tokens holds all the output billed, thinking included), and each judge's spend
-- rows sum all five, so that jury_costs shows them without reading the votes.

ALTER TABLE votes ADD COLUMN cache_write_tokens bigint, ADD COLUMN thinking_tokens bigint;

ALTER TABLE judge_spend
    ADD COLUMN input_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN cached_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN output_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN thinking_tokens bigint NOT NULL DEFAULT 0;

-- What was recorded before: the votes' tokens, into slot 0.
INSERT INTO judge_spend AS s (run_id, judge, slot, votes, cost_usd, input_tokens, cached_tokens, output_tokens)
SELECT v.run_id, v.judge, 0, 0, 0, coalesce(sum(v.prompt_tokens), 0), coalesce(sum(v.cached_tokens), 0),
       coalesce(sum(v.completion_tokens), 0)
FROM votes v GROUP BY v.run_id, v.judge ORDER BY 1, 2
ON CONFLICT (run_id, judge, slot) DO UPDATE
SET input_tokens = s.input_tokens + excluded.input_tokens, cached_tokens = s.cached_tokens + excluded.cached_tokens,
    output_tokens = s.output_tokens + excluded.output_tokens;

-- As in 040, with the two new kinds of token, summed into the spend.
CREATE FUNCTION jury_record_votes(
    p_owner text, p_jobs bigint[], p_claims int[], p_labels text[], p_rationales text[], p_latency_ms int[],
    p_prompt_tokens bigint[], p_completion_tokens bigint[], p_cached_tokens bigint[], p_model_versions text[],
    p_prompt_hashes text[], p_costs double precision[], p_cache_write_tokens bigint[], p_thinking_tokens bigint[]
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    done_jobs bigint[];
    done_examples bigint[];
BEGIN
    PERFORM jury_lock_examples_of(p_jobs);
    WITH input AS (
        SELECT * FROM unnest(p_jobs, p_claims, p_labels, p_rationales, p_latency_ms, p_prompt_tokens,
                             p_completion_tokens, p_cached_tokens, p_model_versions, p_prompt_hashes, p_costs,
                             p_cache_write_tokens, p_thinking_tokens)
            AS i (job_id, claim, label, rationale, latency_ms, prompt_tokens, completion_tokens, cached_tokens,
                  model_version, prompt_hash, cost, cache_write_tokens, thinking_tokens)
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
                           completion_tokens, cached_tokens, cache_write_tokens, thinking_tokens, model_version,
                           prompt_hash, cost_usd, attempts, claims)
        SELECT f.example_id, f.judge, f.run_id, i.label, i.rationale, i.latency_ms, i.prompt_tokens,
               i.completion_tokens, i.cached_tokens, i.cache_write_tokens, i.thinking_tokens, i.model_version,
               i.prompt_hash, i.cost, f.attempts, f.claims
        FROM finished f JOIN input i ON i.job_id = f.id
        RETURNING run_id, judge, cost_usd, prompt_tokens, cached_tokens, cache_write_tokens, completion_tokens,
                  thinking_tokens
    ), spent AS (
        INSERT INTO judge_spend AS s (run_id, judge, slot, votes, cost_usd, input_tokens, cached_tokens,
                                      cache_write_tokens, output_tokens, thinking_tokens)
        SELECT v.run_id, v.judge, pg_backend_pid(), count(*), coalesce(sum(v.cost_usd), 0),
               coalesce(sum(v.prompt_tokens), 0), coalesce(sum(v.cached_tokens), 0),
               coalesce(sum(v.cache_write_tokens), 0), coalesce(sum(v.completion_tokens), 0),
               coalesce(sum(v.thinking_tokens), 0)
        FROM inserted v GROUP BY v.run_id, v.judge
        ORDER BY v.run_id, v.judge
        ON CONFLICT (run_id, judge, slot) DO UPDATE
        SET votes = s.votes + excluded.votes, cost_usd = s.cost_usd + excluded.cost_usd,
            input_tokens = s.input_tokens + excluded.input_tokens,
            cached_tokens = s.cached_tokens + excluded.cached_tokens,
            cache_write_tokens = s.cache_write_tokens + excluded.cache_write_tokens,
            output_tokens = s.output_tokens + excluded.output_tokens,
            thinking_tokens = s.thinking_tokens + excluded.thinking_tokens
    )
    SELECT array_agg(f.id), array_agg(f.example_id) INTO done_jobs, done_examples FROM finished f;
    PERFORM jury_settle_examples(done_examples, false);
    RETURN QUERY SELECT unnest(done_jobs);
END
$$;

-- Workers built before this migration call the old signature until they are replaced (a
-- rolling upgrade): their votes are recorded the same way, without the two new kinds.
CREATE OR REPLACE FUNCTION jury_record_votes(
    p_owner text, p_jobs bigint[], p_claims int[], p_labels text[], p_rationales text[], p_latency_ms int[],
    p_prompt_tokens bigint[], p_completion_tokens bigint[], p_cached_tokens bigint[], p_model_versions text[],
    p_prompt_hashes text[], p_costs double precision[]
) RETURNS SETOF bigint
LANGUAGE sql AS $$
    SELECT jury_record_votes(p_owner, p_jobs, p_claims, p_labels, p_rationales, p_latency_ms, p_prompt_tokens,
                             p_completion_tokens, p_cached_tokens, p_model_versions, p_prompt_hashes, p_costs,
                             NULL::bigint[], NULL::bigint[])
$$;

-- The spend per run and judge, with its tokens by kind.
CREATE OR REPLACE VIEW jury_costs AS
SELECT r.name AS run, s.judge, s.votes, s.cost_usd,
       sum(s.cost_usd) OVER (PARTITION BY r.id) AS run_cost_usd,
       (r.config ->> 'budget_usd')::double precision AS budget_usd,
       s.input_tokens, s.cached_tokens, s.cache_write_tokens, s.output_tokens, s.thinking_tokens
FROM (
    SELECT x.run_id, x.judge, sum(x.votes)::bigint AS votes, sum(x.cost_usd) AS cost_usd,
           sum(x.input_tokens)::bigint AS input_tokens, sum(x.cached_tokens)::bigint AS cached_tokens,
           sum(x.cache_write_tokens)::bigint AS cache_write_tokens, sum(x.output_tokens)::bigint AS output_tokens,
           sum(x.thinking_tokens)::bigint AS thinking_tokens
    FROM judge_spend x GROUP BY x.run_id, x.judge
) s
JOIN runs r ON r.id = s.run_id
ORDER BY r.name, s.judge;

-- As in 040, with the tokens of gone backends folded into slot 0 too.
CREATE OR REPLACE FUNCTION jury_compact_counts() RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    folded int;
    dropped int;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('jury.compact_counts'));
    DELETE FROM run_counts c
    WHERE c.counter LIKE 'votes.minute.%'
      AND c.counter < 'votes.minute.' || to_char((now() - interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI');
    GET DIAGNOSTICS dropped = ROW_COUNT;
    WITH gone AS (
        DELETE FROM run_counts c
        WHERE c.slot <> 0 AND c.slot <> pg_backend_pid()
          AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = c.slot)
        RETURNING c.run_id, c.judge, c.counter, c.n
    ), summed AS (
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT g.run_id, g.judge, g.counter, 0, sum(g.n) FROM gone g
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n
    )
    SELECT count(*) INTO folded FROM gone;
    WITH gone AS (
        DELETE FROM judge_spend s
        WHERE s.slot <> 0 AND s.slot <> pg_backend_pid()
          AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = s.slot)
        RETURNING s.run_id, s.judge, s.votes, s.cost_usd, s.input_tokens, s.cached_tokens, s.cache_write_tokens,
                  s.output_tokens, s.thinking_tokens
    ), summed AS (
        INSERT INTO judge_spend AS s (run_id, judge, slot, votes, cost_usd, input_tokens, cached_tokens,
                                      cache_write_tokens, output_tokens, thinking_tokens)
        SELECT g.run_id, g.judge, 0, sum(g.votes), sum(g.cost_usd), sum(g.input_tokens), sum(g.cached_tokens),
               sum(g.cache_write_tokens), sum(g.output_tokens), sum(g.thinking_tokens)
        FROM gone g
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (run_id, judge, slot) DO UPDATE
        SET votes = s.votes + excluded.votes, cost_usd = s.cost_usd + excluded.cost_usd,
            input_tokens = s.input_tokens + excluded.input_tokens,
            cached_tokens = s.cached_tokens + excluded.cached_tokens,
            cache_write_tokens = s.cache_write_tokens + excluded.cache_write_tokens,
            output_tokens = s.output_tokens + excluded.output_tokens,
            thinking_tokens = s.thinking_tokens + excluded.thinking_tokens
    )
    SELECT folded + count(*) INTO folded FROM gone;
    RETURN folded + dropped;
END
$$;
