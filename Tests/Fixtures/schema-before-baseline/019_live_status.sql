-- What `jury status --watch` shows beyond the counts: rates over the last minute, ETA, and
-- the errors jobs carry now, by class. Each is a view, for dashboards and psql.

-- Per run, judge and class of error (the error's text up to its first colon: "rate limited",
-- "server error", "timeout", "bad answer", ...): jobs retrying and jobs failed. Jobs carrying
-- an error are few; the partial index jobs_erring finds them without reading the queue.
CREATE VIEW jury_error_classes AS
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
CREATE VIEW jury_judge_progress AS
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
LEFT JOIN judge_spend s ON s.run_id = k.run_id AND s.judge = k.judge;

-- Per run: the judges' rates summed, and the time left: that of the slowest judge, unknown
-- (NULL) while a judge with jobs left has voted nothing lately.
CREATE VIEW jury_run_eta AS
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
