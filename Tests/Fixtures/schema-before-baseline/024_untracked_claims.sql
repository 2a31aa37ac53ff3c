-- A claim whose answer the connection lost may still have committed; an outcome whose commit
-- was acknowledged may still be lost (a crash under asynchronous commit, a failover to a
-- replica behind). Either way jobs are running under a worker that is alive, beating its
-- heartbeat, and knows nothing of them: no reaper takes them back, and the run never ends.
-- After any of its statements fails, the worker gives back whatever it holds but does not
-- track (`p_tracked`), as a return: no attempt counted.
--
-- Only the worker itself calls this, from the task that claims, so nothing it claims is
-- between the claim and the tracking while this runs.
CREATE FUNCTION jury_return_untracked_jobs(p_owner text, p_tracked bigint[]) RETURNS int
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
        array_fill('claimed by a statement whose answer the connection lost; given back'::text, ARRAY[v_count]),
        array_fill(0::float8, ARRAY[v_count]), array_fill(false, ARRAY[v_count]),
        array_fill(NULL::float8, ARRAY[v_count]));
    RETURN v_count;
END
$$;

INSERT INTO jury_privileges (role, kind, name) VALUES ('jury_worker', 'function', 'jury_return_untracked_jobs');
