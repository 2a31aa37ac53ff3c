-- Enqueue's job inserts cost less: no foreign key to the example, and counts taken by group.
--
-- Jobs no longer carry a foreign key to their example.
--
-- Enqueue inserts one job per example and judge, and the key's check (a row-level trigger
-- that looks the example up) took about 40% of that insert: 1.8 s of 4.4 for the 200,000
-- jobs of a 50,000-example chunk. Nothing needs it to hold: the only statement that inserts
-- jobs (jury_insert_lines) inserts them for the examples it has just inserted. What the key
-- also did, deleting an example's jobs with it, a statement-level trigger now does.
ALTER TABLE jobs DROP CONSTRAINT jobs_example_id_fkey;

CREATE FUNCTION jury_delete_jobs_of_examples() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM jobs j USING old_examples o WHERE j.example_id = o.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER examples_delete_jobs AFTER DELETE ON examples REFERENCING OLD TABLE AS old_examples
FOR EACH STATEMENT EXECUTE FUNCTION jury_delete_jobs_of_examples();

-- The jobs' counts, as in 012, but an insert groups its rows before naming their counters:
-- an enqueue chunk inserts 200,000 jobs in a handful of (run, judge, state) groups.
CREATE OR REPLACE FUNCTION jury_count_jobs() RETURNS trigger
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
        SELECT g.run_id, g.judge, k.counter, pg_backend_pid(), sum(g.n)
        FROM (
            SELECT n.run_id, n.judge, n.state, n.attempts > 0 OR n.retrying_since IS NOT NULL AS retrying,
                   count(*) AS n
            FROM new_jobs n GROUP BY 1, 2, 3, 4
        ) g
        CROSS JOIN LATERAL unnest(CASE WHEN g.state = 'pending' AND g.retrying
                                       THEN ARRAY['jobs.' || g.state, 'jobs.retrying']
                                       ELSE ARRAY['jobs.' || g.state] END) k (counter)
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
