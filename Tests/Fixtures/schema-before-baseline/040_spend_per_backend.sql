-- The judges' spend is kept in a row per backend, as the counts are (012).
--
-- Every record added its votes and their cost to the run's judge_spend rows, one per judge,
-- and held those rows locked until its commit was on disk: the records of a run committed one
-- at a time, whatever the number of workers. pgbench running Jury's claim and record with 16
-- clients and 4 votes a record spent most of its samples waiting on another transaction
-- (pg_stat_activity: about 3,000 of 4,600 on Lock:transactionid) and made 2,120-2,210 votes/s;
-- with this migration 2,900-3,030 (three alternating pairs), waiting mostly on the WAL flush
-- its commits now share. In claims of 128 with 4 clients it measured level.
--
-- Now each backend adds to its own rows (slot = its pid); readers sum the slots, and the
-- reducer's compaction folds the slots of backends that are gone into slot 0.

ALTER TABLE judge_spend ADD COLUMN slot int NOT NULL DEFAULT 0;
ALTER TABLE judge_spend DROP CONSTRAINT judge_spend_pkey;
ALTER TABLE judge_spend ADD PRIMARY KEY (run_id, judge, slot);

-- As in 037, but into the recording backend's own row.
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
        INSERT INTO judge_spend AS s (run_id, judge, slot, votes, cost_usd)
        SELECT v.run_id, v.judge, pg_backend_pid(), count(*), coalesce(sum(v.cost_usd), 0)
        FROM inserted v GROUP BY v.run_id, v.judge
        ORDER BY v.run_id, v.judge
        ON CONFLICT (run_id, judge, slot) DO UPDATE
        SET votes = s.votes + excluded.votes, cost_usd = s.cost_usd + excluded.cost_usd
    )
    SELECT array_agg(f.id), array_agg(f.example_id) INTO done_jobs, done_examples FROM finished f;
    PERFORM jury_settle_examples(done_examples, false);
    RETURN QUERY SELECT unnest(done_jobs);
END
$$;

-- The views read the spend summed over the slots.
CREATE OR REPLACE VIEW jury_costs AS
SELECT r.name AS run, s.judge, s.votes, s.cost_usd,
       sum(s.cost_usd) OVER (PARTITION BY r.id) AS run_cost_usd,
       (r.config ->> 'budget_usd')::double precision AS budget_usd
FROM (
    SELECT x.run_id, x.judge, sum(x.votes)::bigint AS votes, sum(x.cost_usd) AS cost_usd
    FROM judge_spend x GROUP BY x.run_id, x.judge
) s
JOIN runs r ON r.id = s.run_id
ORDER BY r.name, s.judge;

CREATE OR REPLACE VIEW jury_judge_progress AS
WITH minutes AS (
    SELECT 'votes.minute.' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI') AS current,
           'votes.minute.' || to_char((now() - interval '1 minute') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI')
               AS previous,
           60 + extract(epoch FROM now() - date_trunc('minute', now())) AS window_seconds
), k AS (
    SELECT c.run_id, c.judge,
           coalesce(sum(c.n) FILTER (WHERE c.counter = 'jobs.done'), 0) AS done,
           coalesce(sum(c.n) FILTER (WHERE c.counter = 'jobs.failed'), 0) AS failed,
           coalesce(sum(c.n) FILTER (WHERE c.counter = 'jobs.cancelled'), 0) AS cancelled,
           coalesce(sum(c.n) FILTER (WHERE c.counter IN ('jobs.pending', 'jobs.running', 'jobs.waiting')), 0) AS remaining,
           coalesce(sum(c.n) FILTER (WHERE c.counter = 'votes.tokens'), 0) AS tokens,
           coalesce(sum(c.n) FILTER (WHERE c.counter IN (m.current, m.previous)), 0) AS recent_votes,
           min(m.window_seconds) AS window_seconds
    FROM run_counts c CROSS JOIN minutes m
    WHERE c.judge <> ''
    GROUP BY c.run_id, c.judge
)
SELECT r.name AS run, k.judge,
       k.done::bigint, k.failed::bigint, k.cancelled::bigint, k.remaining::bigint,
       round((k.recent_votes * 60 / k.window_seconds)::numeric, 1)::float8 AS votes_per_minute,
       CASE WHEN k.remaining = 0 THEN 0
            WHEN k.recent_votes > 0 THEN round(k.remaining * k.window_seconds / k.recent_votes)::float8 END
           AS eta_seconds,
       k.tokens::bigint,
       coalesce(s.cost_usd, 0) AS cost_usd
FROM k
JOIN runs r ON r.id = k.run_id
LEFT JOIN (
    SELECT x.run_id, x.judge, sum(x.cost_usd) AS cost_usd FROM judge_spend x GROUP BY x.run_id, x.judge
) s ON s.run_id = k.run_id AND s.judge = k.judge;

CREATE OR REPLACE VIEW jury_early_decisions AS
SELECT r.name AS run,
       coalesce((SELECT sum(c.n) FROM run_counts c WHERE c.run_id = r.id AND c.counter = 'examples.early'), 0)::bigint
           AS examples_decided_early,
       coalesce(sum(c.cancelled), 0)::bigint AS calls_saved,
       sum(c.cancelled * s.cost_usd / nullif(s.votes, 0)) AS cost_saved_usd
FROM runs r
LEFT JOIN (
    SELECT k.run_id, k.judge, sum(k.n) AS cancelled FROM run_counts k WHERE k.counter = 'jobs.cancelled'
    GROUP BY k.run_id, k.judge
) c ON c.run_id = r.id
LEFT JOIN (
    SELECT x.run_id, x.judge, sum(x.votes) AS votes, sum(x.cost_usd) AS cost_usd
    FROM judge_spend x GROUP BY x.run_id, x.judge
) s ON s.run_id = c.run_id AND s.judge = c.judge
GROUP BY r.id, r.name;

-- As in 012, and also folds the spend of gone backends into slot 0.
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
        RETURNING s.run_id, s.judge, s.votes, s.cost_usd
    ), summed AS (
        INSERT INTO judge_spend AS s (run_id, judge, slot, votes, cost_usd)
        SELECT g.run_id, g.judge, 0, sum(g.votes), sum(g.cost_usd) FROM gone g
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (run_id, judge, slot) DO UPDATE SET votes = s.votes + excluded.votes, cost_usd = s.cost_usd + excluded.cost_usd
    )
    SELECT folded + count(*) INTO folded FROM gone;
    RETURN folded + dropped;
END
$$;
