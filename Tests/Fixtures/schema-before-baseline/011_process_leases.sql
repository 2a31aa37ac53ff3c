-- Leases held by the worker's heartbeat, not renewed job by job.
--
-- A claim still stamps each job with a lease (lease_expires_at), in the same update that
-- claims it. From then on nothing rewrites the job until its outcome: while the process that
-- claimed it beats, its row in `workers` holds the lease of every job it owns. Before this,
-- a worker renewed every job it held every third of the lease, each renewal a new version
-- of the job's row with new index entries: thousands of writes a minute for a worker with
-- slow judges.
--
-- The reaper takes back a running job once both leases have passed: the job's own (so a
-- claim by an owner that never registered, such as a script, still ends) and its owner's
-- (so a live worker keeps its jobs for as long as calls take).

ALTER TABLE workers ADD COLUMN lease_expires_at timestamptz;

DROP FUNCTION jury_renew_leases(text, double precision, bigint[], int[]);
DROP FUNCTION jury_process_heartbeat(text, int);

-- Beats the process's heartbeat and extends its lease, which covers every job it holds.
-- Returns false when the lease had already lapsed (or the process is unknown): the reaper
-- may have taken its jobs back, and their outcomes will be refused.
CREATE FUNCTION jury_process_heartbeat(p_id text, p_in_flight int, p_lease_seconds double precision)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    held boolean;
BEGIN
    -- The old lease is read under the row lock the update takes: a concurrent beat cannot interleave.
    SELECT coalesce(w.lease_expires_at >= now(), true) INTO held FROM workers w WHERE w.id = p_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE workers
    SET heartbeat_at = now(), in_flight = p_in_flight,
        lease_expires_at = now() + make_interval(secs => p_lease_seconds)
    WHERE id = p_id;
    RETURN held;
END
$$;

-- A stopped process holds nothing: whatever it could not record is taken back at once.
CREATE OR REPLACE FUNCTION jury_process_stopped(p_id text) RETURNS void
LANGUAGE sql AS $$
    UPDATE workers SET stopped_at = now(), in_flight = 0, lease_expires_at = now() WHERE id = p_id
$$;

-- Takes back the running jobs whose lease passed and whose owner's lease passed too (or that
-- have no registered owner): back to pending, or failed once they used the run's max_attempts.
-- Any process may call it at any time; call it until it returns less than p_limit.
CREATE OR REPLACE FUNCTION jury_reap_expired_leases(p_limit int DEFAULT 1000) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    expired bigint[];
    reaped int;
    failed_examples bigint[];
BEGIN
    SELECT array_agg(x.id) INTO expired FROM (
        SELECT j.id FROM jobs j
        WHERE j.state = 'running' AND j.lease_expires_at < now()
          AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = j.lease_owner AND w.lease_expires_at >= now())
        ORDER BY j.lease_expires_at LIMIT p_limit
    ) x;
    IF expired IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM jury_lock_examples_of(expired);
    WITH locked AS (
        SELECT j.id, j.attempts >= coalesce((r.config ->> 'max_attempts')::int, 5) AS final
        FROM jobs j JOIN runs r ON r.id = j.run_id
        WHERE j.id = ANY (expired) AND j.state = 'running' AND j.lease_expires_at < now()
          AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = j.lease_owner AND w.lease_expires_at >= now())
        FOR UPDATE OF j SKIP LOCKED
    ), reaped_jobs AS (
        UPDATE jobs j
        SET state = CASE WHEN l.final THEN 'failed' ELSE 'pending' END,
            run_after = now(), lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
            last_error = 'lease expired: the worker holding the job stopped beating its heartbeat'
        FROM locked l WHERE j.id = l.id AND j.id = ANY (expired)
        RETURNING j.id, j.example_id, l.final
    )
    SELECT count(*), array_agg(r.example_id) FILTER (WHERE r.final) INTO reaped, failed_examples FROM reaped_jobs r;
    PERFORM jury_settle_examples(failed_examples, true);
    IF reaped > 0 THEN
        PERFORM pg_notify('jury_jobs', '');
    END IF;
    RETURN reaped;
END
$$;

-- Processes, with when their lease (covering the jobs they hold) runs out.
CREATE OR REPLACE VIEW jury_workers AS
SELECT id, role, host, pid, in_flight, started_at, heartbeat_at, stopped_at,
       stopped_at IS NULL AND heartbeat_at > now() - interval '1 minute' AS alive,
       lease_expires_at
FROM workers;
