-- Least privilege: three kinds of login.
--
-- - The owner (whoever runs `jury migrate`) owns every table, view and function, and is the
--   one `jury run`, `jury enqueue`, `jury retry`, `jury reduce`, `jury import-labels` and
--   `jury run purge` connect as.
-- - `jury_worker`, for `jury worker` and `jury reducer` processes: it changes the queue only
--   through the functions those processes call, which run as their owner (SECURITY DEFINER,
--   with a fixed search_path), and reads only the tables they read (run configs, breakers,
--   account holds; for the reducer, the examples and votes of Dawid-Skene runs and the last
--   calibration). It cannot insert, update or delete any row itself, nor call the owner's
--   functions.
-- - `jury_reader`, for dashboards and `jury status`: the monitoring views and the runs.
--
-- Both are NOLOGIN group roles; logins are made members (`CREATE ROLE name LOGIN IN ROLE
-- jury_worker`). Roles belong to the whole PostgreSQL cluster, so two Jury databases in one
-- cluster share them; their privileges are granted per database.
--
-- jury_grant_roles() holds the whole grant list. `jury migrate` runs it after every
-- migration it applies (a later migration that adds a function the processes call adds it
-- here), and running it again puts the privileges right.

-- The reducer's Dawid-Skene reductions lock the run they decide, as `jury reduce` does.
CREATE FUNCTION jury_lock_run_for_reduction(p_run bigint)
RETURNS TABLE (id bigint, name text, config jsonb, state text)
LANGUAGE sql AS $$
    SELECT r.id, r.name, r.config, r.state FROM runs r WHERE r.id = p_run FOR NO KEY UPDATE
$$;

-- What each role is granted, besides the jury_* views the reader sees: the functions it may
-- call (all their overloads; they run as their owner) and the tables it may read. A later
-- migration that adds a function the processes call adds a row here.
CREATE TABLE jury_privileges (
    role  text NOT NULL CHECK (role IN ('jury_worker', 'jury_reader')),
    kind  text NOT NULL CHECK (kind IN ('function', 'table')),
    name  text NOT NULL,
    PRIMARY KEY (role, kind, name)
);
INSERT INTO jury_privileges (role, kind, name)
SELECT 'jury_worker', 'function', unnest(ARRAY[
    'jury_claim_jobs', 'jury_record_votes', 'jury_release_jobs', 'jury_record_invalid_answers',
    'jury_reap_expired_leases', 'jury_register_process', 'jury_process_heartbeat', 'jury_process_stopped',
    'jury_take_permits', 'jury_adjust_permits', 'jury_hold_account', 'jury_observe_account',
    'jury_open_breaker', 'jury_run_within_budget', 'jury_claim_ready_examples', 'jury_record_verdicts',
    'jury_replace_verdicts', 'jury_lock_run_for_reduction', 'jury_finish_runs', 'jury_compact_counts'])
UNION ALL
SELECT 'jury_worker', 'table', unnest(ARRAY[
    'runs', 'judge_breakers', 'account_limits', 'examples', 'votes', 'calibrations', 'jury_schema_migrations'])
UNION ALL
-- What the monitoring views call.
SELECT 'jury_reader', 'function', unnest(ARRAY[
    'jury_recent_latencies', 'jury_job_counters', 'jury_example_counters', 'jury_verdict_counters'])
UNION ALL
SELECT 'jury_reader', 'table', unnest(ARRAY['runs', 'jury_schema_migrations']);

-- Creates the roles when missing and sets every privilege of this schema's jury_* functions,
-- its tables and views, from jury_privileges. Returns NULL, or why the roles could not be
-- created (the owner may lack CREATEROLE).
CREATE FUNCTION jury_grant_roles() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_schema text := current_schema();
    v_role text;
    v_function regprocedure;
    v_name text;
BEGIN
    -- Processes migrating at once take turns, as with the migrations themselves.
    PERFORM pg_advisory_xact_lock(hashtext('jury.migrate'));
    FOREACH v_role IN ARRAY ARRAY['jury_worker', 'jury_reader'] LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_role);
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
        EXCEPTION
            -- Another database's migration made it first.
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RETURN format('could not create the role %s (the owner lacks CREATEROLE): have an administrator '
                              'run CREATE ROLE jury_worker NOLOGIN; CREATE ROLE jury_reader NOLOGIN; '
                              'then run jury migrate again', v_role);
        END;
    END LOOP;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO jury_worker, jury_reader', v_schema);

    -- Functions: nobody but the owner, then each role its own, run as the owner with a fixed
    -- search_path (pg_temp last, so that no temporary table can stand in for a real one).
    FOR v_function, v_name IN
        SELECT p.oid::regprocedure, p.proname FROM pg_proc p
        WHERE p.pronamespace = v_schema::regnamespace AND p.proname LIKE 'jury\_%' AND p.prokind = 'f'
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, jury_worker, jury_reader', v_function);
        FOR v_role IN SELECT g.role FROM jury_privileges g WHERE g.kind = 'function' AND g.name = v_name LOOP
            EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', v_function, v_schema);
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', v_function, v_role);
        END LOOP;
    END LOOP;

    -- Tables and views: nothing, then reads. Only Jury's own: other tables in the schema are left alone.
    FOR v_name IN
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = v_schema::regnamespace AND c.relkind IN ('r', 'v', 'p')
          AND (c.relname LIKE 'jury\_%' OR c.relname IN (
              'runs', 'examples', 'jobs', 'votes', 'verdicts', 'verdict_history', 'workers', 'invalid_answers',
              'judge_breakers', 'judge_spend', 'judge_retry_caps', 'account_limits', 'run_counts', 'calibrations'))
    LOOP
        EXECUTE format('REVOKE ALL ON %I FROM PUBLIC, jury_worker, jury_reader', v_name);
        FOR v_role IN
            SELECT g.role FROM jury_privileges g WHERE g.kind = 'table' AND g.name = v_name
            UNION
            SELECT 'jury_reader' FROM pg_class v
            WHERE v.relnamespace = v_schema::regnamespace AND v.relname = v_name AND v.relkind = 'v'
        LOOP
            EXECUTE format('GRANT SELECT ON %I TO %I', v_name, v_role);
        END LOOP;
    END LOOP;
    RETURN NULL;
END;
$$;
