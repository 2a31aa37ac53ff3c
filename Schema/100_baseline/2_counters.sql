-- The counts the transitions keep, so that `jury status` and the monitoring views answer in
-- milliseconds at ten million jobs instead of counting whole tables.
--
-- Statement-level triggers on jobs, examples, verdicts and votes add what each statement
-- changed (new rows counted in, old rows counted out) to run_counts, in rows of the backend's
-- own (slot = its pid), so concurrent transitions never wait on each other's counters and a
-- transaction that moves several cannot deadlock over them. Each trigger is one INSERT ... ON
-- CONFLICT over the statement's transition tables, adding rows in key order.
--
-- What keeps the counts true:
-- - Every change to a counted row goes through a statement these triggers see; none is skipped
--   but `jury run purge`, which sets jury.purging so that a run's finished jobs leave without
--   changing what it counted.
-- - Rows deleted because their run is being deleted count nothing: the run's counts go with it.
-- - A job's vote replaces it: the vote's insert counts 'jobs.done', the job's delete counts
--   the job out of 'jobs.running'.
-- - jury_counts_from_tables (8_views.sql) counts the same from the tables; the tests compare them.
--
-- Counters: jobs.<state> and jobs.retrying per judge; examples, examples.<state> and
-- examples.early; verdicts.<status>, verdicts.people and outcomes.<outcome>; votes.tokens and
-- votes.minute.<UTC minute> per judge (the last hour, for jury_throughput); and per batch
-- (judge ''): batch.examples.B, batch.<example state>.B and batch.<verdict status>.B.

-- What a row of jobs counts towards: its state, and whether it is pending to retry.
CREATE OR REPLACE FUNCTION jury_job_counters(p_state text, p_attempts int, p_retrying_since timestamptz) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_state = 'pending' AND (p_attempts > 0 OR p_retrying_since IS NOT NULL)
                THEN ARRAY['jobs.' || p_state, 'jobs.retrying']
                ELSE ARRAY['jobs.' || p_state] END
$$;

-- What a row of examples counts towards: its state, and whether it was decided early.
CREATE OR REPLACE FUNCTION jury_example_counters(p_state text, p_jobs_cancelled int) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_jobs_cancelled > 0 THEN ARRAY['examples', 'examples.' || p_state, 'examples.early']
                ELSE ARRAY['examples', 'examples.' || p_state] END
$$;

-- What a verdict counts towards: its status, its outcome for the production label, who decided.
CREATE OR REPLACE FUNCTION jury_verdict_counters(p_status text, p_outcome text, p_decided_by text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['verdicts.' || p_status, 'outcomes.' || coalesce(p_outcome, 'none')]
           || CASE WHEN p_decided_by = 'people' THEN ARRAY['verdicts.people'] ELSE ARRAY[]::text[] END
$$;

-- A batch's counter: the batch is in the counter's name, as the minute is in votes.minute.*.
CREATE OR REPLACE FUNCTION jury_batch_counter(p_kind text, p_batch text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'batch.' || p_kind || '.' || p_batch
$$;

-- The jobs' counts. Updates (every claim and release) count each row's old state out and new
-- state in; deletes (a vote replacing its job, a purge) count the rows out. Jobs are inserted
-- only by jury_insert_lines, which counts the jobs it inserts itself, by group.
CREATE OR REPLACE FUNCTION jury_count_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- `jury run purge` removes finished jobs without changing what the run counted.
    IF current_setting('jury.purging', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- Spelled out rather than through jury_job_counters: this runs for every claim.
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
    ELSIF TG_OP = 'DELETE' THEN
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

CREATE OR REPLACE TRIGGER jobs_count_updated AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_jobs();

CREATE OR REPLACE TRIGGER jobs_count_deleted AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_jobs
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_jobs();

-- The examples' counts, overall and per batch.
CREATE OR REPLACE FUNCTION jury_count_examples() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        -- Most updates move only the job counters: just the rows whose state or early decision changed.
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT x.run_id, '', d.counter, pg_backend_pid(), sum(d.delta)
        FROM (
            SELECT n.run_id, n.batch, n.state AS new_state, o.state AS old_state,
                   (n.jobs_cancelled > 0)::int - (o.jobs_cancelled > 0)::int AS early
            FROM old_examples o JOIN new_examples n ON n.id = o.id
            WHERE o.state <> n.state OR (o.jobs_cancelled > 0) <> (n.jobs_cancelled > 0)
        ) x
        CROSS JOIN LATERAL (
            VALUES ('examples.' || x.new_state, 1), ('examples.' || x.old_state, -1), ('examples.early', x.early),
                   (jury_batch_counter(x.new_state, x.batch), 1), (jury_batch_counter(x.old_state, x.batch), -1)
        ) d (counter, delta)
        GROUP BY x.run_id, d.counter
        HAVING sum(d.delta) <> 0
        ORDER BY x.run_id, d.counter
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'INSERT' THEN
        -- An enqueue chunk inserts 50,000 examples of one batch and state: group them first,
        -- then name the counters of each group, rather than naming four per row.
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT g.run_id, '', k.counter, pg_backend_pid(), sum(g.n)
        FROM (
            SELECT n.run_id, n.batch, n.state, n.jobs_cancelled, count(*) AS n
            FROM new_examples n GROUP BY 1, 2, 3, 4
        ) g
        CROSS JOIN LATERAL unnest(jury_example_counters(g.state, g.jobs_cancelled)
                                  || ARRAY[jury_batch_counter('examples', g.batch), jury_batch_counter(g.state, g.batch)])
             k (counter)
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT o.run_id, '', k.counter, pg_backend_pid(), -count(*)
        FROM old_examples o
        CROSS JOIN LATERAL unnest(jury_example_counters(o.state, o.jobs_cancelled)
                                  || ARRAY[jury_batch_counter('examples', o.batch), jury_batch_counter(o.state, o.batch)])
             k (counter)
        WHERE EXISTS (SELECT 1 FROM runs r WHERE r.id = o.run_id)
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER examples_count_inserted AFTER INSERT ON examples REFERENCING NEW TABLE AS new_examples
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_examples();

CREATE OR REPLACE TRIGGER examples_count_updated AFTER UPDATE ON examples
REFERENCING OLD TABLE AS old_examples NEW TABLE AS new_examples
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_examples();

CREATE OR REPLACE TRIGGER examples_count_deleted AFTER DELETE ON examples REFERENCING OLD TABLE AS old_examples
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_examples();

-- The verdicts' counts, overall and per batch (the batch is the example's).
CREATE OR REPLACE FUNCTION jury_count_verdicts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT d.run_id, '', d.counter, pg_backend_pid(), sum(d.delta)
        FROM (
            SELECT n.run_id, k.counter, 1 AS delta
            FROM new_verdicts n JOIN examples e ON e.id = n.example_id
            CROSS JOIN LATERAL unnest(jury_verdict_counters(n.status, n.outcome, n.decided_by)
                                      || jury_batch_counter(n.status, e.batch)) k (counter)
            UNION ALL
            SELECT o.run_id, k.counter, -1
            FROM old_verdicts o JOIN examples e ON e.id = o.example_id
            CROSS JOIN LATERAL unnest(jury_verdict_counters(o.status, o.outcome, o.decided_by)
                                      || jury_batch_counter(o.status, e.batch)) k (counter)
        ) d
        GROUP BY d.run_id, d.counter
        HAVING sum(d.delta) <> 0
        ORDER BY d.run_id, d.counter
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT n.run_id, '', k.counter, pg_backend_pid(), count(*)
        FROM new_verdicts n JOIN examples e ON e.id = n.example_id
        CROSS JOIN LATERAL unnest(jury_verdict_counters(n.status, n.outcome, n.decided_by)
                                  || jury_batch_counter(n.status, e.batch)) k (counter)
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        -- Verdicts are withdrawn (jury retry) while their examples stay; when the examples go
        -- too, jury_purge_run deletes the verdicts first, so that their batch is still known.
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT o.run_id, '', k.counter, pg_backend_pid(), -count(*)
        FROM old_verdicts o JOIN examples e ON e.id = o.example_id
        CROSS JOIN LATERAL unnest(jury_verdict_counters(o.status, o.outcome, o.decided_by)
                                  || jury_batch_counter(o.status, e.batch)) k (counter)
        WHERE EXISTS (SELECT 1 FROM runs r WHERE r.id = o.run_id)
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER verdicts_count_inserted AFTER INSERT ON verdicts REFERENCING NEW TABLE AS new_verdicts
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_verdicts();

CREATE OR REPLACE TRIGGER verdicts_count_updated AFTER UPDATE ON verdicts
REFERENCING OLD TABLE AS old_verdicts NEW TABLE AS new_verdicts
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_verdicts();

CREATE OR REPLACE TRIGGER verdicts_count_deleted AFTER DELETE ON verdicts REFERENCING OLD TABLE AS old_verdicts
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_verdicts();

-- The votes' counts: each counts a done job, its tokens and its minute, per judge. Votes are
-- inserted only by jury_record_votes, and deleted only with their example (a purge with
-- --everything) or their run.
CREATE OR REPLACE FUNCTION jury_count_votes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT d.run_id, d.judge, d.counter, pg_backend_pid(), sum(d.n)
        FROM (
            SELECT n.run_id, n.judge, 'jobs.done' AS counter, 1 AS n FROM new_votes n
            UNION ALL
            SELECT n.run_id, n.judge, 'votes.tokens', coalesce(n.prompt_tokens, 0) + coalesce(n.completion_tokens, 0)
            FROM new_votes n
            UNION ALL
            SELECT n.run_id, n.judge, 'votes.minute.' || to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI'), 1
            FROM new_votes n
        ) d
        GROUP BY d.run_id, d.judge, d.counter
        HAVING sum(d.n) <> 0
        ORDER BY d.run_id, d.judge, d.counter
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT d.run_id, d.judge, d.counter, pg_backend_pid(), -sum(d.n)
        FROM (
            SELECT o.run_id, o.judge, 'jobs.done' AS counter, 1 AS n FROM old_votes o
            UNION ALL
            SELECT o.run_id, o.judge, 'votes.tokens', coalesce(o.prompt_tokens, 0) + coalesce(o.completion_tokens, 0)
            FROM old_votes o
            UNION ALL
            SELECT o.run_id, o.judge, 'votes.minute.' || to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI'), 1
            FROM old_votes o
            -- Minutes older than an hour are no longer kept (jury_compact_counts drops them).
            WHERE to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI')
                  >= to_char((now() - interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI')
        ) d
        WHERE EXISTS (SELECT 1 FROM runs r WHERE r.id = d.run_id)
        GROUP BY d.run_id, d.judge, d.counter
        HAVING sum(d.n) <> 0
        ORDER BY d.run_id, d.judge, d.counter
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER votes_count_inserted AFTER INSERT ON votes REFERENCING NEW TABLE AS new_votes
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_votes();

CREATE OR REPLACE TRIGGER votes_count_deleted AFTER DELETE ON votes REFERENCING OLD TABLE AS old_votes
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_votes();

-- Folds the counts and spend of backends that have gone into slot 0, so that readers sum few
-- rows, and drops the votes-per-minute counts older than an hour. Returns how many rows it
-- folded or dropped. Safe at any time: a backend that comes back with a reused pid adds to a
-- fresh row once the fold has committed. The reducer calls it every minute.
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

-- The batch counters summed over the slots, one row per run and batch: the one place that
-- reads their names back. jury_batch_progress shows them; the reducer asks them which
-- Dawid-Skene batches are due (jury_dawid_skene_due).
CREATE OR REPLACE VIEW jury_batch_counts AS
SELECT c.run_id, k.batch,
       coalesce(sum(c.n) FILTER (WHERE k.kind = 'examples'), 0)::bigint AS examples,
       coalesce(sum(c.n) FILTER (WHERE k.kind = 'voting'), 0)::bigint AS voting,
       coalesce(sum(c.n) FILTER (WHERE k.kind = 'ready'), 0)::bigint AS ready,
       coalesce(sum(c.n) FILTER (WHERE k.kind = 'decided'), 0)::bigint AS decided,
       coalesce(sum(c.n) FILTER (WHERE k.kind = 'agreed'), 0)::bigint AS agreed,
       coalesce(sum(c.n) FILTER (WHERE k.kind = 'disagreed'), 0)::bigint AS disagreed,
       coalesce(sum(c.n) FILTER (WHERE k.kind = 'insufficient'), 0)::bigint AS insufficient
FROM run_counts c
CROSS JOIN LATERAL (
    SELECT split_part(c.counter, '.', 2) AS kind,
           substr(c.counter, length('batch.' || split_part(c.counter, '.', 2) || '.') + 1) AS batch
) k
WHERE c.judge = '' AND c.counter LIKE 'batch.%'
GROUP BY c.run_id, k.batch;
