-- Counts kept by the transitions, so that `jury status` and the views answer in milliseconds
-- at ten million jobs instead of counting whole tables.
--
-- Statement-level triggers on jobs, examples and verdicts add what each statement changed
-- (new rows counted in, old rows counted out) to `run_counts`, one row per run, judge,
-- counter and backend. Each backend adds to rows of its own (slot = its pid), so concurrent
-- transitions never wait on each other's counters, and a transaction that touches several
-- counters cannot deadlock with another over them. Readers sum the slots.
-- `jury_compact_counts` folds the slots of backends that are gone into slot 0.

CREATE TABLE run_counts (
    run_id   bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    -- '' for the counters of examples and verdicts.
    judge    text NOT NULL,
    counter  text NOT NULL,
    slot     int NOT NULL,
    n        bigint NOT NULL,
    PRIMARY KEY (run_id, judge, counter, slot)
);

-- What a row of jobs counts towards: its state, and whether it is pending to retry.
CREATE FUNCTION jury_job_counters(p_state text, p_attempts int, p_retrying_since timestamptz) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_state = 'pending' AND (p_attempts > 0 OR p_retrying_since IS NOT NULL)
                THEN ARRAY['jobs.' || p_state, 'jobs.retrying']
                ELSE ARRAY['jobs.' || p_state] END
$$;

-- What a row of examples counts towards: its state, and whether it was decided early.
CREATE FUNCTION jury_example_counters(p_state text, p_jobs_cancelled int) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_jobs_cancelled > 0 THEN ARRAY['examples', 'examples.' || p_state, 'examples.early']
                ELSE ARRAY['examples', 'examples.' || p_state] END
$$;

-- What a verdict counts towards: its status, its outcome for the production label, who decided.
CREATE FUNCTION jury_verdict_counters(p_status text, p_outcome text, p_decided_by text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['verdicts.' || p_status, 'outcomes.' || coalesce(p_outcome, 'none')]
           || CASE WHEN p_decided_by = 'people' THEN ARRAY['verdicts.people'] ELSE ARRAY[]::text[] END
$$;

-- The triggers. Claims and records fire them on every statement, so each is a single
-- INSERT ... ON CONFLICT over the statement's transition tables (PL/pgSQL plans it once per
-- session), adding rows in key order. A statement that deleted rows because their run is
-- being deleted adds nothing: the run's counts go with it.
CREATE FUNCTION jury_count_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- `jury run purge` removes finished jobs without changing what the run counted.
    IF current_setting('jury.purging', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- Spelled out rather than through jury_job_counters: this runs for every claim and vote.
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT d.run_id, d.judge, d.counter, pg_backend_pid(), sum(d.delta)
        FROM (
            SELECT n.run_id, n.judge, 'jobs.' || n.state AS counter, 1 AS delta FROM new_jobs n
            UNION ALL
            SELECT o.run_id, o.judge, 'jobs.' || o.state, -1 FROM old_jobs o
            UNION ALL
            SELECT n.run_id, n.judge, 'jobs.retrying', 1 FROM new_jobs n
            WHERE n.state = 'pending' AND (n.attempts > 0 OR n.retrying_since IS NOT NULL)
            UNION ALL
            SELECT o.run_id, o.judge, 'jobs.retrying', -1 FROM old_jobs o
            WHERE o.state = 'pending' AND (o.attempts > 0 OR o.retrying_since IS NOT NULL)
        ) d
        GROUP BY d.run_id, d.judge, d.counter
        HAVING sum(d.delta) <> 0
        ORDER BY d.run_id, d.judge, d.counter
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT n.run_id, n.judge, k.counter, pg_backend_pid(), count(*)
        FROM new_jobs n CROSS JOIN LATERAL unnest(jury_job_counters(n.state, n.attempts, n.retrying_since)) k (counter)
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT o.run_id, o.judge, k.counter, pg_backend_pid(), -count(*)
        FROM old_jobs o CROSS JOIN LATERAL unnest(jury_job_counters(o.state, o.attempts, o.retrying_since)) k (counter)
        WHERE EXISTS (SELECT 1 FROM runs r WHERE r.id = o.run_id)
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_count_inserted AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_jobs
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_jobs();
CREATE TRIGGER jobs_count_updated AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_jobs();
CREATE TRIGGER jobs_count_deleted AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_jobs
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_jobs();

CREATE FUNCTION jury_count_examples() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        -- Most updates move only the job counters: just the rows whose state or early decision changed.
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT x.run_id, '', d.counter, pg_backend_pid(), sum(d.delta)
        FROM (
            SELECT n.run_id, n.state AS new_state, o.state AS old_state,
                   (n.jobs_cancelled > 0)::int - (o.jobs_cancelled > 0)::int AS early
            FROM old_examples o JOIN new_examples n ON n.id = o.id
            WHERE o.state <> n.state OR (o.jobs_cancelled > 0) <> (n.jobs_cancelled > 0)
        ) x
        CROSS JOIN LATERAL (
            VALUES ('examples.' || x.new_state, 1), ('examples.' || x.old_state, -1), ('examples.early', x.early)
        ) d (counter, delta)
        GROUP BY x.run_id, d.counter
        HAVING sum(d.delta) <> 0
        ORDER BY x.run_id, d.counter
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT n.run_id, '', k.counter, pg_backend_pid(), count(*)
        FROM new_examples n CROSS JOIN LATERAL unnest(jury_example_counters(n.state, n.jobs_cancelled)) k (counter)
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT o.run_id, '', k.counter, pg_backend_pid(), -count(*)
        FROM old_examples o CROSS JOIN LATERAL unnest(jury_example_counters(o.state, o.jobs_cancelled)) k (counter)
        WHERE EXISTS (SELECT 1 FROM runs r WHERE r.id = o.run_id)
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER examples_count_inserted AFTER INSERT ON examples REFERENCING NEW TABLE AS new_examples
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_examples();
CREATE TRIGGER examples_count_updated AFTER UPDATE ON examples
REFERENCING OLD TABLE AS old_examples NEW TABLE AS new_examples
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_examples();
CREATE TRIGGER examples_count_deleted AFTER DELETE ON examples REFERENCING OLD TABLE AS old_examples
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_examples();

CREATE FUNCTION jury_count_verdicts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT d.run_id, '', d.counter, pg_backend_pid(), sum(d.delta)
        FROM (
            SELECT n.run_id, k.counter, 1 AS delta
            FROM new_verdicts n
            CROSS JOIN LATERAL unnest(jury_verdict_counters(n.status, n.outcome, n.decided_by)) k (counter)
            UNION ALL
            SELECT o.run_id, k.counter, -1
            FROM old_verdicts o
            CROSS JOIN LATERAL unnest(jury_verdict_counters(o.status, o.outcome, o.decided_by)) k (counter)
        ) d
        GROUP BY d.run_id, d.counter
        HAVING sum(d.delta) <> 0
        ORDER BY d.run_id, d.counter
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT n.run_id, '', k.counter, pg_backend_pid(), count(*)
        FROM new_verdicts n
        CROSS JOIN LATERAL unnest(jury_verdict_counters(n.status, n.outcome, n.decided_by)) k (counter)
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT o.run_id, '', k.counter, pg_backend_pid(), -count(*)
        FROM old_verdicts o
        CROSS JOIN LATERAL unnest(jury_verdict_counters(o.status, o.outcome, o.decided_by)) k (counter)
        WHERE EXISTS (SELECT 1 FROM runs r WHERE r.id = o.run_id)
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER verdicts_count_inserted AFTER INSERT ON verdicts REFERENCING NEW TABLE AS new_verdicts
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_verdicts();
CREATE TRIGGER verdicts_count_updated AFTER UPDATE ON verdicts
REFERENCING OLD TABLE AS old_verdicts NEW TABLE AS new_verdicts
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_verdicts();
CREATE TRIGGER verdicts_count_deleted AFTER DELETE ON verdicts REFERENCING OLD TABLE AS old_verdicts
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_verdicts();

-- Tokens of the votes cast per judge, and votes per judge and minute (for jury_throughput).
-- Votes are only ever inserted, or deleted with their run.
CREATE FUNCTION jury_count_votes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
    SELECT d.run_id, d.judge, d.counter, pg_backend_pid(), sum(d.n)
    FROM (
        SELECT n.run_id, n.judge, 'votes.tokens' AS counter,
               coalesce(n.prompt_tokens, 0) + coalesce(n.completion_tokens, 0) AS n
        FROM new_votes n
        UNION ALL
        SELECT n.run_id, n.judge, 'votes.minute.' || to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI'), 1
        FROM new_votes n
    ) d
    GROUP BY d.run_id, d.judge, d.counter
    HAVING sum(d.n) <> 0
    ORDER BY d.run_id, d.judge, d.counter
    ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$;

CREATE TRIGGER votes_count_inserted AFTER INSERT ON votes REFERENCING NEW TABLE AS new_votes
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_votes();

-- The same counts computed from the tables: slow on a large run, for checking the kept ones
-- (the chaos test compares them) and for setting them right.
CREATE VIEW jury_counts_from_tables AS
SELECT j.run_id, j.judge, k.counter, count(*)::bigint AS n
FROM jobs j CROSS JOIN LATERAL unnest(jury_job_counters(j.state, j.attempts, j.retrying_since)) k (counter)
GROUP BY 1, 2, 3
UNION ALL
SELECT e.run_id, '', k.counter, count(*)
FROM examples e CROSS JOIN LATERAL unnest(jury_example_counters(e.state, e.jobs_cancelled)) k (counter)
GROUP BY 1, 2, 3
UNION ALL
SELECT v.run_id, '', k.counter, count(*)
FROM verdicts v CROSS JOIN LATERAL unnest(jury_verdict_counters(v.status, v.outcome, v.decided_by)) k (counter)
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

-- The counts of what is already there, in slot 0.
INSERT INTO run_counts (run_id, judge, counter, slot, n) SELECT run_id, judge, counter, 0, n FROM jury_counts_from_tables;

-- Folds the slots of backends that have gone into slot 0, so that readers sum few rows, and
-- drops the votes-per-minute counts older than an hour. Returns how many rows it folded or
-- dropped. Safe at any time: a backend that comes back with a reused pid adds to a fresh
-- row once the fold has committed. The reducer calls it every minute.
CREATE FUNCTION jury_compact_counts() RETURNS int
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
    RETURN folded + dropped;
END
$$;

-- Per run, judge and counter: the sum over the slots.
CREATE VIEW jury_counts AS
SELECT run_id, judge, counter, sum(n)::bigint AS n FROM run_counts GROUP BY run_id, judge, counter;

-- A judge's latest votes, newest first: an index by judge, in place of the one by run, so
-- that they are found without reading the other judges' votes.
CREATE INDEX votes_run_judge_created ON votes (run_id, judge, created_at);
DROP INDEX votes_run_created;

CREATE FUNCTION jury_recent_latencies(p_run bigint, p_judge text) RETURNS TABLE (latency_ms int)
LANGUAGE sql STABLE AS $$
    SELECT v.latency_ms FROM votes v WHERE v.run_id = p_run AND v.judge = p_judge ORDER BY v.created_at DESC LIMIT 1000
$$;

-- The views of 002 and 009 from the counts, not from counting the tables.
DROP VIEW jury_run_progress, jury_judge_health, jury_early_decisions, jury_outcomes, jury_throughput;

CREATE VIEW jury_run_progress AS
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

-- Judge health; latency over each judge's latest 1,000 votes, tokens from the spend.
CREATE VIEW jury_judge_health AS
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

CREATE VIEW jury_early_decisions AS
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
LEFT JOIN judge_spend s ON s.run_id = c.run_id AND s.judge = c.judge
GROUP BY r.id, r.name;

CREATE VIEW jury_outcomes AS
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

-- Votes per minute over the last 15 minutes, per run and judge, from the counts (whose
-- minutes are named in UTC, whatever the session's time zone).
CREATE VIEW jury_throughput AS
SELECT r.name AS run, c.judge, (substr(c.counter, 14) || ':00+00')::timestamptz AS minute,
       sum(c.n)::bigint AS votes
FROM run_counts c
JOIN runs r ON r.id = c.run_id
WHERE c.counter LIKE 'votes.minute.%'
  AND c.counter >= 'votes.minute.' || to_char((now() - interval '15 minutes') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI')
GROUP BY r.name, c.judge, c.counter;
