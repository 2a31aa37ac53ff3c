-- Two functions restated to say what they do now.
--
-- jury_return_untracked_jobs gives back the jobs the database says a worker holds but the
-- worker does not track. Since 024 that is a claim that committed while its answer was lost,
-- and also a job whose recorded outcome the database lost; the error it leaves on those jobs
-- named only the first.
--
-- jury_count_jobs kept a branch for inserted jobs, which no trigger has called since 025
-- (enqueue counts the jobs it inserts itself).

CREATE OR REPLACE FUNCTION jury_return_untracked_jobs(p_owner text, p_tracked bigint[]) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_jobs bigint[];
    v_claims int[];
    v_count int;
BEGIN
    SELECT array_agg(j.id ORDER BY j.id), array_agg(j.claims ORDER BY j.id) INTO v_jobs, v_claims
    FROM jobs j
    WHERE j.state = 'running' AND j.lease_owner = p_owner AND j.id <> ALL (coalesce(p_tracked, '{}'));
    IF v_jobs IS NULL THEN
        RETURN 0;
    END IF;
    v_count := cardinality(v_jobs);
    SELECT count(*) INTO v_count
    FROM jury_release_jobs(
        p_owner, v_jobs, v_claims, array_fill('returned'::text, ARRAY[v_count]),
        array_fill('held by this worker without its knowing (a claim that committed unheard, or an outcome the database lost); given back'::text, ARRAY[v_count]),
        array_fill(0::float8, ARRAY[v_count]), array_fill(false, ARRAY[v_count]),
        array_fill(NULL::float8, ARRAY[v_count]));
    RETURN v_count;
END
$$;

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
