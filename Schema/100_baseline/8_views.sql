-- The monitoring views: what `jury status`, `jury run list` and the processes' /metrics show,
-- answerable with psql alone. The jury_reader role sees every jury_* view.
--
-- They read the kept counts (run_counts, judge_spend: 2_counters.sql), summed over the slots,
-- and indexes made for them (jobs_erring, verdicts_disputed, votes_run_judge_created), so that
-- each answers in milliseconds on runs of millions. jury_counts_from_tables counts the same from
-- the tables: slow on a large run, for checking the kept counts (the tests and the chaos run
-- compare them) and for setting them right.

-- A judge's latest 1,000 vote latencies, newest first, through votes_run_judge_created.
CREATE OR REPLACE FUNCTION jury_recent_latencies(p_run bigint, p_judge text) RETURNS TABLE (latency_ms int)
LANGUAGE sql STABLE AS $$
    SELECT v.latency_ms FROM votes v WHERE v.run_id = p_run AND v.judge = p_judge ORDER BY v.created_at DESC LIMIT 1000
$$;

-- Per run and judge with jobs waiting: how many, and how long the oldest claimable one has
-- waited. One query per /metrics scrape: the counts are kept, and the oldest is the first
-- entry of the claim index for its run and judge.
CREATE OR REPLACE FUNCTION jury_queue_depth()
RETURNS TABLE (run text, judge text, pending bigint, oldest_age_seconds double precision)
LANGUAGE sql STABLE AS $$
    SELECT r.name, c.judge, c.pending,
           coalesce(extract(epoch FROM now() - (
               SELECT min(j.run_after) FROM jobs j
               WHERE j.run_id = c.run_id AND j.judge = c.judge AND j.state = 'pending' AND j.run_after <= now())), 0)::float8
    FROM (
        SELECT k.run_id, k.judge, sum(k.n)::bigint AS pending
        FROM run_counts k WHERE k.counter = 'jobs.pending' AND k.judge <> ''
        GROUP BY k.run_id, k.judge
    ) c
    JOIN runs r ON r.id = c.run_id
    WHERE c.pending > 0 AND r.state IN ('active', 'paused')
    ORDER BY r.name, c.judge
$$;

-- One row per run: examples, jobs and verdicts by state.
CREATE OR REPLACE VIEW jury_run_progress AS
SELECT r.name AS run,
       r.state,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'examples'), 0)::bigint AS examples,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'examples.voting'), 0)::bigint AS voting,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'examples.ready'), 0)::bigint AS ready,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'examples.decided'), 0)::bigint AS decided,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'jobs.pending'), 0)::bigint AS pending,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'jobs.running'), 0)::bigint AS running,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'jobs.done'), 0)::bigint AS done,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'jobs.failed'), 0)::bigint AS failed,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'verdicts.agreed'), 0)::bigint AS agreed,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'verdicts.disagreed'), 0)::bigint AS disagreed,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'verdicts.insufficient'), 0)::bigint AS insufficient,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'jobs.waiting'), 0)::bigint AS waiting,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'jobs.cancelled'), 0)::bigint AS cancelled
FROM runs r
LEFT JOIN run_counts c ON c.run_id = r.id
GROUP BY r.id, r.name, r.state;

-- One row per run and batch: how far each batch has come.
CREATE OR REPLACE VIEW jury_batch_progress AS
SELECT r.name AS run,
       b.batch,
       b.examples, b.voting, b.ready, b.decided,
       (SELECT count(*) FROM jobs j JOIN examples e ON e.id = j.example_id
        WHERE j.run_id = b.run_id AND j.state = 'failed' AND e.batch = b.batch) AS jobs_failed,
       b.agreed, b.disagreed, b.insufficient
FROM jury_batch_counts b
JOIN runs r ON r.id = b.run_id
WHERE b.examples > 0;

-- One row per run and judge: progress, jobs retrying after outages (their attempts were
-- refunded), the Retry-After values the run's cap cut short, latency over the judge's latest
-- 1,000 votes, tokens from the spend.
CREATE OR REPLACE VIEW jury_judge_health AS
SELECT r.name AS run,
       s.judge,
       s.pending, s.running, s.done, s.failed, s.waiting_to_retry,
       (SELECT round(avg(l.latency_ms)) FROM jury_recent_latencies(r.id, s.judge) l) AS avg_latency_ms,
       (SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY l.latency_ms)
          FROM jury_recent_latencies(r.id, s.judge) l) AS p95_latency_ms,
       s.tokens,
       (SELECT e.last_error FROM jobs e
          WHERE e.run_id = r.id AND e.judge = s.judge AND e.last_error IS NOT NULL
          ORDER BY e.updated_at DESC LIMIT 1) AS last_error,
       (SELECT min(e.retrying_since) FROM jobs e
          WHERE e.run_id = r.id AND e.judge = s.judge AND e.last_error IS NOT NULL
            AND e.state IN ('pending', 'running')) AS retrying_since,
       (SELECT c.capped FROM judge_retry_caps c WHERE c.run_id = r.id AND c.judge = s.judge) AS retry_after_capped,
       (SELECT c.longest_asked FROM judge_retry_caps c WHERE c.run_id = r.id AND c.judge = s.judge)
           AS longest_retry_after_asked
FROM (
    SELECT c.run_id, c.judge,
           coalesce(sum(c.n) FILTER (WHERE c.counter = 'jobs.pending'), 0)::bigint AS pending,
           coalesce(sum(c.n) FILTER (WHERE c.counter = 'jobs.running'), 0)::bigint AS running,
           coalesce(sum(c.n) FILTER (WHERE c.counter = 'jobs.done'), 0)::bigint AS done,
           coalesce(sum(c.n) FILTER (WHERE c.counter = 'jobs.failed'), 0)::bigint AS failed,
           coalesce(sum(c.n) FILTER (WHERE c.counter = 'jobs.retrying'), 0)::bigint AS waiting_to_retry,
           coalesce(sum(c.n) FILTER (WHERE c.counter = 'votes.tokens'), 0)::bigint AS tokens
    FROM run_counts c WHERE c.judge <> ''
    GROUP BY c.run_id, c.judge
) s
JOIN runs r ON r.id = s.run_id;

-- Jobs that failed for good, with the error, newest first: what `jury retry` would restart.
CREATE OR REPLACE VIEW jury_failures AS
SELECT r.name AS run, e.batch, e.external_id, j.judge, j.attempts, j.last_error, j.updated_at AS failed_at
FROM jobs j
JOIN runs r ON r.id = j.run_id
JOIN examples e ON e.id = j.example_id
WHERE j.state = 'failed'
ORDER BY j.updated_at DESC;

-- Error messages of failed jobs and of jobs waiting to retry, by judge: the error mix.
CREATE OR REPLACE VIEW jury_errors AS
SELECT r.name AS run, j.judge, j.state, j.last_error, count(*) AS jobs
FROM jobs j
JOIN runs r ON r.id = j.run_id
WHERE j.last_error IS NOT NULL
GROUP BY r.name, j.judge, j.state, j.last_error;

-- Examples for people: the panel did not agree, or it agreed against the production label;
-- with every vote and rationale.
CREATE OR REPLACE VIEW jury_disagreements AS
SELECT r.name AS run, e.batch, e.external_id, v.status, v.agreement, e.human_label, e.source_label,
       (SELECT jsonb_object_agg(x.judge, x.label) FROM votes x WHERE x.example_id = e.id) AS votes,
       v.outcome,
       (SELECT jsonb_object_agg(x.judge, x.rationale) FROM votes x WHERE x.example_id = e.id) AS rationales
FROM verdicts v
JOIN examples e ON e.id = v.example_id
JOIN runs r ON r.id = v.run_id
WHERE v.decided_by = 'panel' AND (v.status <> 'agreed' OR v.outcome IN ('relabel', 'clarify'));

-- Votes per minute over the last 15 minutes, per run and judge, from the counts (whose minutes
-- are named in UTC, whatever the session's time zone).
CREATE OR REPLACE VIEW jury_throughput AS
SELECT r.name AS run, c.judge, (substr(c.counter, 14) || ':00+00')::timestamptz AS minute,
       sum(c.n)::bigint AS votes
FROM run_counts c
JOIN runs r ON r.id = c.run_id
WHERE c.counter LIKE 'votes.minute.%'
  AND c.counter >= 'votes.minute.' || to_char((now() - interval '15 minutes') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI')
GROUP BY r.name, c.judge, c.counter;

-- Processes, with when their lease (covering the jobs they hold) runs out.
CREATE OR REPLACE VIEW jury_workers AS
SELECT id, role, host, pid, in_flight, started_at, heartbeat_at, stopped_at,
       stopped_at IS NULL AND heartbeat_at > now() - interval '1 minute' AS alive,
       lease_expires_at
FROM workers;

-- Invalid answers per run and judge, the latest first: what a person reads to fix a prompt.
CREATE OR REPLACE VIEW jury_invalid_answers AS
SELECT r.name AS run, a.judge, count(*) OVER (PARTITION BY a.run_id, a.judge) AS invalid_answers,
       e.external_id AS example, a.error, a.answer, a.created_at
FROM invalid_answers a
JOIN runs r ON r.id = a.run_id
JOIN examples e ON e.id = a.example_id
ORDER BY a.created_at DESC;

-- Open breakers: the judges stopped fleet-wide, and why.
CREATE OR REPLACE VIEW jury_breakers AS
SELECT r.name AS run, b.judge, b.reason, b.opened_by, b.opened_at
FROM judge_breakers b JOIN runs r ON r.id = b.run_id
ORDER BY b.opened_at;

-- The spend per run and judge, with its tokens by kind and the run's budget.
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

-- The accounts' limits per minute, and whether one is held now.
CREATE OR REPLACE VIEW jury_account_limits AS
SELECT limit_key, requests_per_second * 60 AS requests_per_minute, tokens_per_second * 60 AS tokens_per_minute,
       held_until, held_until > clock_timestamp() AS held
FROM account_limits
ORDER BY limit_key;

-- Per run: examples decided early, the judge calls that saved (cancelled jobs), and what those
-- calls would have cost at each judge's average cost per vote so far.
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

-- Per run: what became of the production labels, and who decided.
CREATE OR REPLACE VIEW jury_outcomes AS
SELECT r.name AS run,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'outcomes.keep'), 0)::bigint AS keep,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'outcomes.relabel'), 0)::bigint AS relabel,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'outcomes.clarify'), 0)::bigint AS clarify,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'outcomes.drop'), 0)::bigint AS drop,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'outcomes.none'), 0)::bigint AS without_source_label,
       coalesce(sum(c.n) FILTER (WHERE c.counter = 'verdicts.people'), 0)::bigint AS decided_by_people
FROM runs r JOIN run_counts c ON c.run_id = r.id AND c.judge = ''
GROUP BY r.id, r.name
HAVING sum(c.n) FILTER (WHERE c.counter LIKE 'outcomes.%') > 0;

-- The counts computed from the tables, as the triggers keep them: done jobs are counted from
-- the votes that replaced them.
CREATE OR REPLACE VIEW jury_counts_from_tables AS
SELECT j.run_id, j.judge, k.counter, count(*)::bigint AS n
FROM jobs j CROSS JOIN LATERAL unnest(jury_job_counters(j.state, j.attempts, j.retrying_since)) k (counter)
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

-- Per run, judge and counter: the sum over the slots.
CREATE OR REPLACE VIEW jury_counts AS
SELECT run_id, judge, counter, sum(n)::bigint AS n FROM run_counts GROUP BY run_id, judge, counter;

-- Table and index sizes, live and dead rows of Jury's largest tables: what a purge gives back.
CREATE OR REPLACE VIEW jury_table_sizes AS
SELECT c.relname AS table_name,
       pg_table_size(c.oid) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       s.n_live_tup AS live_rows,
       s.n_dead_tup AS dead_rows,
       s.last_autovacuum, s.last_vacuum
FROM pg_class c
JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relname IN ('jobs', 'examples', 'votes', 'verdicts', 'verdict_history', 'invalid_answers', 'run_counts')
  AND c.relnamespace = to_regnamespace(current_schema())
ORDER BY c.relname;

-- Every run with its state, progress, verdicts and spend: what `jury run list` prints.
CREATE OR REPLACE VIEW jury_runs AS
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

-- Per run, judge and class of error (the error's text up to its first colon: "rate limited",
-- "server error", "timeout", "bad answer", ...): jobs retrying and jobs failed. Jobs carrying
-- an error are few; the partial index jobs_erring finds them without reading the queue.
CREATE OR REPLACE VIEW jury_error_classes AS
SELECT r.name AS run, j.judge,
       CASE WHEN position(':' IN j.last_error) BETWEEN 2 AND 40 THEN split_part(j.last_error, ':', 1) ELSE 'other' END
           AS class,
       count(*) FILTER (WHERE j.state <> 'failed') AS retrying,
       count(*) FILTER (WHERE j.state = 'failed') AS failed
FROM jobs j
JOIN runs r ON r.id = j.run_id
WHERE j.last_error IS NOT NULL AND j.state IN ('pending', 'running', 'failed')
GROUP BY 1, 2, 3;

-- Per run and judge: jobs done and left, votes per minute over the last one to two minutes
-- (the minute before this one and this one so far), the time left at that rate, tokens and cost.
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

-- Per run: the judges' rates summed, and the time left: that of the slowest judge, unknown
-- (NULL) while a judge with jobs left has voted nothing lately.
CREATE OR REPLACE VIEW jury_run_eta AS
SELECT p.run,
       sum(p.votes_per_minute) AS votes_per_minute,
       sum(p.remaining)::bigint AS remaining_jobs,
       CASE WHEN bool_and(p.remaining = 0) THEN 0
            WHEN bool_or(p.remaining > 0 AND p.eta_seconds IS NULL) THEN NULL
            ELSE max(p.eta_seconds) END AS eta_seconds,
       sum(p.tokens)::bigint AS tokens,
       sum(p.cost_usd) AS cost_usd
FROM jury_judge_progress p
GROUP BY p.run;

-- Each run's replaced configs, oldest first.
CREATE OR REPLACE VIEW jury_run_config_history AS
SELECT r.name AS run, h.replaced_at, h.replaced_by, h.config
FROM run_config_history h
JOIN runs r ON r.id = h.run_id
ORDER BY r.name, h.replaced_at, h.id;
