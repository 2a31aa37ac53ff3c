-- Per-batch counts kept by the transitions, so that jury_batch_progress answers in
-- milliseconds on runs of millions (it counted every example and verdict: 1.8 s at 2.5
-- million examples).
--
-- They live in run_counts beside the others (judge ''), the batch in the counter's name as
-- the minute is in votes.minute.*: batch.examples.B, batch.voting.B, batch.ready.B,
-- batch.decided.B, and batch.agreed.B, batch.disagreed.B, batch.insufficient.B for verdicts.
-- Only a change of an example's state, or a verdict written or withdrawn, moves them: a vote
-- that leaves its example voting adds nothing.

CREATE FUNCTION jury_batch_counter(p_kind text, p_batch text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'batch.' || p_kind || '.' || p_batch
$$;

-- The examples' counts, as in 012, with the per-batch ones.
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

-- The verdicts' counts, as in 012, with the per-batch statuses (the batch is the example's).
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

-- As in 014, with the chunk's verdicts deleted before their examples (see above).
CREATE OR REPLACE FUNCTION jury_purge_run(p_run bigint, p_limit int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    chunk bigint[];
BEGIN
    SELECT array_agg(x.id ORDER BY x.id) INTO chunk FROM (
        SELECT e.id FROM examples e WHERE e.run_id = p_run ORDER BY e.id LIMIT p_limit
    ) x;
    IF chunk IS NULL THEN
        DELETE FROM runs WHERE id = p_run;
        RETURN 0;
    END IF;
    DELETE FROM verdicts v WHERE v.example_id = ANY (chunk);
    DELETE FROM examples e WHERE e.id = ANY (chunk);
    RETURN cardinality(chunk);
END
$$;

-- The per-batch counts of what is already there, in slot 0.
INSERT INTO run_counts (run_id, judge, counter, slot, n)
SELECT e.run_id, '', k.counter, 0, count(*)
FROM examples e CROSS JOIN LATERAL unnest(ARRAY[jury_batch_counter('examples', e.batch), jury_batch_counter(e.state, e.batch)]) k (counter)
GROUP BY 1, 2, 3
UNION ALL
SELECT v.run_id, '', jury_batch_counter(v.status, e.batch), 0, count(*)
FROM verdicts v JOIN examples e ON e.id = v.example_id
GROUP BY 1, 2, 3;

-- The counts computed from the tables, for checking the kept ones: as in 012, with the batches'.
CREATE OR REPLACE VIEW jury_counts_from_tables AS
SELECT j.run_id, j.judge, k.counter, count(*)::bigint AS n
FROM jobs j CROSS JOIN LATERAL unnest(jury_job_counters(j.state, j.attempts, j.retrying_since)) k (counter)
GROUP BY 1, 2, 3
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

-- Progress per run and batch, from the counts. (Until 020 it also summed the examples' open
-- and failed jobs; examples voting and ready say the first, jobs_failed the second.)
DROP VIEW jury_batch_progress;
CREATE VIEW jury_batch_progress AS
SELECT r.name AS run,
       b.batch,
       b.examples, b.voting, b.ready, b.decided,
       (SELECT count(*) FROM jobs j JOIN examples e ON e.id = j.example_id
        WHERE j.run_id = b.run_id AND j.state = 'failed' AND e.batch = b.batch) AS jobs_failed,
       b.agreed, b.disagreed, b.insufficient
FROM (
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
    GROUP BY c.run_id, k.batch
) b
JOIN runs r ON r.id = b.run_id
WHERE b.examples > 0;

-- jury_counts_from_tables names batch counters through this function: readers call it.
INSERT INTO jury_privileges (role, kind, name) VALUES ('jury_reader', 'function', 'jury_batch_counter');
