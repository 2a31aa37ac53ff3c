-- Runs and the processes that serve them: a run's life (created, paused, cancelled, done and
-- reopened, deleted) and the worker and reducer processes' registrations and leases.
--
-- Invariants:
-- - A run ends (jury_finish_runs) only while no transaction is adding work to it: adders hold
--   its row FOR SHARE (jury_lock_run_for_work), the finisher takes it FOR NO KEY UPDATE and skips
--   a run it cannot lock, then counts again under the lock.
-- - A process's jobs are safe while its own lease holds: its heartbeat extends one lease that
--   covers every job it holds, and the reaper takes a job back only once both have lapsed.

-- Stores a run and its judges' account limits. Returns the new run's id, or NULL when a run
-- of that name exists.
CREATE OR REPLACE FUNCTION jury_create_run(
    p_name text, p_config jsonb, p_keys text[], p_requests_per_second double precision[],
    p_tokens_per_second double precision[]
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO runs (name, config) VALUES (p_name, p_config) ON CONFLICT (name) DO NOTHING RETURNING id INTO v_id;
    IF v_id IS NOT NULL THEN
        PERFORM jury_define_limits(p_keys, p_requests_per_second, p_tokens_per_second);
    END IF;
    RETURN v_id;
END;
$$;

-- Pauses, resumes or cancels a run. A cancelled run stays cancelled. Returns the state the run
-- had before (NULL for no such run); workers are woken when a run becomes active.
CREATE OR REPLACE FUNCTION jury_set_run_state(p_run bigint, p_state text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_before text;
BEGIN
    SELECT state INTO v_before FROM runs WHERE id = p_run FOR UPDATE;
    IF v_before IS NULL OR (v_before = 'cancelled' AND p_state <> 'cancelled') THEN
        RETURN v_before;
    END IF;
    UPDATE runs SET state = p_state WHERE id = p_run;
    IF p_state = 'active' THEN
        PERFORM pg_notify('jury_jobs', '');
    END IF;
    RETURN v_before;
END;
$$;

-- Removes a run with everything it holds (examples, jobs, votes, verdicts, limits).
CREATE OR REPLACE FUNCTION jury_delete_run(p_run bigint) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM runs WHERE id = p_run
$$;

-- Whether a run has examples and none left to decide, by the kept counts.
CREATE OR REPLACE FUNCTION jury_run_complete(p_run bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(c.n) FILTER (WHERE c.counter = 'examples'), 0) > 0
       AND coalesce(sum(c.n) FILTER (WHERE c.counter IN ('examples.voting', 'examples.ready')), 0) = 0
    FROM run_counts c WHERE c.run_id = p_run AND c.judge = ''
$$;

-- Marks done every active run that has examples and none left to decide; returns their names.
-- A run that looks complete is locked, then counted again: a transaction that added work
-- meanwhile held the lock until it committed, so the second count sees that work. A run
-- locked right now is skipped, for the next call.
CREATE OR REPLACE FUNCTION jury_finish_runs() RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    v_run bigint;
    v_name text;
BEGIN
    FOR v_run IN SELECT r.id FROM runs r WHERE r.state = 'active' AND jury_run_complete(r.id) ORDER BY r.id LOOP
        SELECT r.name INTO v_name FROM runs r WHERE r.id = v_run AND r.state = 'active'
        FOR NO KEY UPDATE SKIP LOCKED;
        IF v_name IS NOT NULL AND jury_run_complete(v_run) THEN
            UPDATE runs SET state = 'done', finished_at = now() WHERE id = v_run;
            RETURN NEXT v_name;
        END IF;
    END LOOP;
END;
$$;

-- A done run that gets work again (enqueue, retry) is active again; the caller holds its row.
CREATE OR REPLACE FUNCTION jury_reopen_run(p_run bigint) RETURNS void
LANGUAGE sql AS $$
    UPDATE runs SET state = 'active', finished_at = NULL WHERE id = p_run AND state = 'done'
$$;

-- The reducer's Dawid-Skene reductions lock the run they decide, as `jury reduce` does.
CREATE OR REPLACE FUNCTION jury_lock_run_for_reduction(p_run bigint)
RETURNS TABLE (id bigint, name text, config jsonb, state text)
LANGUAGE sql AS $$
    SELECT r.id, r.name, r.config, r.state FROM runs r WHERE r.id = p_run FOR NO KEY UPDATE
$$;

-- Registers a worker or reducer process at its start, with its first lease.
CREATE OR REPLACE FUNCTION jury_register_process(p_id text, p_role text, p_host text, p_pid int) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO workers (id, role, host, pid) VALUES (p_id, p_role, p_host, p_pid)
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), stopped_at = NULL
$$;

-- Beats the process's heartbeat and extends its lease, which covers every job it holds.
-- Returns false when the lease had already lapsed (or the process is unknown): the reaper
-- may have taken its jobs back, and their outcomes will be refused.
CREATE OR REPLACE FUNCTION jury_process_heartbeat(p_id text, p_in_flight int, p_lease_seconds double precision)
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
