-- Which Dawid-Skene runs have a batch to decide, from the kept batch counts.
--
-- The reducer asks this on every pass that leaves it idle. It used to ask the examples table:
-- a ready example whose batch has no example still voting, an anti-join over every ready
-- example of the run, so a run of a million examples waiting on its last votes cost each
-- idle pass a scan of the run. The batch counters (020) hold the same answer, a few rows per
-- batch and writer, and the transitions keep them in the same transaction as the states.

-- The batch counters summed over the slots, one row per run and batch: the one place that
-- reads their names back. jury_batch_progress shows them; the reducer asks them.
CREATE VIEW jury_batch_counts AS
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

-- As in 020, with its counts from jury_batch_counts.
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

CREATE FUNCTION jury_dawid_skene_due(p_run bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT b.run_id
    FROM jury_batch_counts b
    -- = ANY (ARRAY(...)), not IN (...): the runs' ids then reach the index scan of run_counts
    -- inside the view, and only the Dawid-Skene runs' counters are summed.
    WHERE b.run_id = ANY (ARRAY(SELECT r.id FROM runs r
                                WHERE r.config #>> '{consensus,rule}' = 'dawid-skene' AND (p_run IS NULL OR r.id = p_run)))
      AND b.ready > 0 AND b.voting = 0
$$;

INSERT INTO jury_privileges (role, kind, name) VALUES ('jury_worker', 'function', 'jury_dawid_skene_due');
