-- Views for people: what `jury status` prints, answerable with psql alone.

-- One row per run: examples, jobs and verdicts by state.
CREATE VIEW jury_run_progress AS
SELECT r.name AS run,
       r.state,
       (SELECT count(*) FROM examples e WHERE e.run_id = r.id) AS examples,
       (SELECT count(*) FROM examples e WHERE e.run_id = r.id AND e.state = 'voting') AS voting,
       (SELECT count(*) FROM examples e WHERE e.run_id = r.id AND e.state = 'ready') AS ready,
       (SELECT count(*) FROM examples e WHERE e.run_id = r.id AND e.state = 'decided') AS decided,
       j.pending, j.running, j.done, j.failed,
       v.agreed, v.disagreed, v.insufficient
FROM runs r
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
           count(*) FILTER (WHERE state = 'running') AS running,
           count(*) FILTER (WHERE state = 'done') AS done,
           count(*) FILTER (WHERE state = 'failed') AS failed
    FROM jobs WHERE jobs.run_id = r.id
) j ON true
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE status = 'agreed') AS agreed,
           count(*) FILTER (WHERE status = 'disagreed') AS disagreed,
           count(*) FILTER (WHERE status = 'insufficient') AS insufficient
    FROM verdicts WHERE verdicts.run_id = r.id
) v ON true;

-- One row per run and batch: how far each batch has come.
CREATE VIEW jury_batch_progress AS
SELECT r.name AS run,
       e.batch,
       count(*) AS examples,
       count(*) FILTER (WHERE e.state = 'decided') AS decided,
       sum(e.jobs_open) AS jobs_open,
       sum(e.jobs_failed) AS jobs_failed,
       count(v.example_id) FILTER (WHERE v.status = 'agreed') AS agreed,
       count(v.example_id) FILTER (WHERE v.status = 'disagreed') AS disagreed,
       count(v.example_id) FILTER (WHERE v.status = 'insufficient') AS insufficient
FROM examples e
JOIN runs r ON r.id = e.run_id
LEFT JOIN verdicts v ON v.example_id = e.id
GROUP BY r.name, e.batch;

-- One row per run and judge: progress, retries, latency of the votes it cast.
CREATE VIEW jury_judge_health AS
SELECT r.name AS run,
       j.judge,
       count(*) FILTER (WHERE j.state = 'pending') AS pending,
       count(*) FILTER (WHERE j.state = 'running') AS running,
       count(*) FILTER (WHERE j.state = 'done') AS done,
       count(*) FILTER (WHERE j.state = 'failed') AS failed,
       count(*) FILTER (WHERE j.state = 'pending' AND j.attempts > 0) AS waiting_to_retry,
       (SELECT round(avg(v.latency_ms)) FROM votes v WHERE v.run_id = r.id AND v.judge = j.judge) AS avg_latency_ms,
       (SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY v.latency_ms)
          FROM votes v WHERE v.run_id = r.id AND v.judge = j.judge) AS p95_latency_ms,
       (SELECT sum(v.prompt_tokens + v.completion_tokens)
          FROM votes v WHERE v.run_id = r.id AND v.judge = j.judge) AS tokens,
       (SELECT e.last_error FROM jobs e
          WHERE e.run_id = r.id AND e.judge = j.judge AND e.last_error IS NOT NULL
          ORDER BY e.updated_at DESC LIMIT 1) AS last_error
FROM jobs j
JOIN runs r ON r.id = j.run_id
GROUP BY r.id, r.name, j.judge;

-- Jobs that failed for good, with the error, newest first: what `jury retry` would restart.
CREATE VIEW jury_failures AS
SELECT r.name AS run, e.batch, e.external_id, j.judge, j.attempts, j.last_error, j.updated_at AS failed_at
FROM jobs j
JOIN runs r ON r.id = j.run_id
JOIN examples e ON e.id = j.example_id
WHERE j.state = 'failed'
ORDER BY j.updated_at DESC;

-- Error messages of failed jobs and of jobs waiting to retry, by judge: the error mix.
CREATE VIEW jury_errors AS
SELECT r.name AS run, j.judge, j.state, j.last_error, count(*) AS jobs
FROM jobs j
JOIN runs r ON r.id = j.run_id
WHERE j.last_error IS NOT NULL
GROUP BY r.name, j.judge, j.state, j.last_error;

-- Examples the panel did not agree on, with every judge's vote: the queue for people.
CREATE VIEW jury_disagreements AS
SELECT r.name AS run, e.batch, e.external_id, v.status, v.agreement, e.human_label, e.source_label,
       (SELECT jsonb_object_agg(x.judge, x.label) FROM votes x WHERE x.example_id = e.id) AS votes
FROM verdicts v
JOIN examples e ON e.id = v.example_id
JOIN runs r ON r.id = v.run_id
WHERE v.status <> 'agreed';

-- Votes per minute over the last 15 minutes, per run and judge.
CREATE VIEW jury_throughput AS
SELECT r.name AS run, v.judge, date_trunc('minute', v.created_at) AS minute, count(*) AS votes
FROM votes v
JOIN runs r ON r.id = v.run_id
WHERE v.created_at > now() - interval '15 minutes'
GROUP BY r.name, v.judge, date_trunc('minute', v.created_at);

-- Worker and reducer processes, with whether their heartbeat is recent.
CREATE VIEW jury_workers AS
SELECT id, role, host, pid, in_flight, started_at, heartbeat_at, stopped_at,
       stopped_at IS NULL AND heartbeat_at > now() - interval '1 minute' AS alive
FROM workers;
