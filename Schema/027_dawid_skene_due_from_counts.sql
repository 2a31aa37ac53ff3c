-- Which Dawid-Skene runs have a batch to decide, from the kept batch counts.
--
-- The reducer asks this on every pass that leaves it idle. It used to ask the examples table:
-- a ready example whose batch has no example still voting, an anti-join over every ready
-- example of the run, so a run of a million examples waiting on its last votes cost each
-- idle pass a scan of the run. The batch counters (020) hold the same answer, a few rows per
-- batch and writer, and the transitions keep them in the same transaction as the states.
CREATE FUNCTION jury_dawid_skene_due(p_run bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT b.run_id
    FROM (
        SELECT c.run_id, k.batch,
               coalesce(sum(c.n) FILTER (WHERE k.kind = 'voting'), 0) AS voting,
               coalesce(sum(c.n) FILTER (WHERE k.kind = 'ready'), 0) AS ready
        FROM run_counts c
        CROSS JOIN LATERAL (
            SELECT split_part(c.counter, '.', 2) AS kind,
                   substr(c.counter, length('batch.' || split_part(c.counter, '.', 2) || '.') + 1) AS batch
        ) k
        WHERE c.run_id IN (SELECT r.id FROM runs r
                           WHERE r.config #>> '{consensus,rule}' = 'dawid-skene' AND (p_run IS NULL OR r.id = p_run))
          AND c.judge = '' AND c.counter LIKE 'batch.%'
        GROUP BY c.run_id, k.batch
    ) b
    WHERE b.ready > 0 AND b.voting = 0
$$;

INSERT INTO jury_privileges (role, kind, name) VALUES ('jury_worker', 'function', 'jury_dawid_skene_due');
