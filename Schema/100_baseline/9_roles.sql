-- Roles and privileges: least privilege, three kinds of login.
--
-- - The owner (whoever runs `jury migrate`) owns every table, view and function, and is the one
--   `jury run`, `jury enqueue`, `jury retry`, `jury reduce`, `jury import-labels` and `jury run
--   purge` connect as.
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
-- cluster share them; their privileges are granted per database. `jury migrate` runs
-- jury_grant_roles() after every migration it applies, and running it again puts the
-- privileges right. A migration that adds a function the processes call adds its row to
-- jury_privileges.
--
-- Also here: every plpgsql function runs without JIT (jury_functions_without_jit), which `jury
-- migrate` also applies after every migration.

-- What each role is granted besides the jury_* views the reader sees: the functions it may call
-- (all their overloads; they run as their owner) and the tables it may read.
INSERT INTO jury_privileges (role, kind, name)
SELECT 'jury_worker', 'function', unnest(ARRAY[
    'jury_adjust_permits', 'jury_claim_jobs', 'jury_claim_ready_examples', 'jury_compact_counts',
    'jury_dawid_skene_due', 'jury_finish_runs', 'jury_hold_account', 'jury_lock_run_for_reduction',
    'jury_observe_account', 'jury_open_breaker', 'jury_process_heartbeat', 'jury_process_stopped',
    'jury_queue_depth', 'jury_reap_expired_leases', 'jury_record_invalid_answers', 'jury_record_verdicts',
    'jury_record_votes', 'jury_register_process', 'jury_release_jobs', 'jury_replace_verdicts',
    'jury_return_untracked_jobs', 'jury_run_within_budget', 'jury_take_permits'])
UNION ALL
SELECT 'jury_worker', 'table', unnest(ARRAY[
    'account_limits', 'calibrations', 'examples', 'judge_breakers', 'jury_schema_migrations', 'runs', 'votes'])
UNION ALL
-- What the monitoring views call.
SELECT 'jury_reader', 'function', unnest(ARRAY[
    'jury_batch_counter', 'jury_example_counters', 'jury_job_counters', 'jury_recent_latencies',
    'jury_verdict_counters'])
UNION ALL
SELECT 'jury_reader', 'table', unnest(ARRAY['jury_schema_migrations', 'runs'])
ON CONFLICT DO NOTHING;

-- Creates the roles when missing and sets every privilege of this schema's jury_* functions,
-- its tables and views, from jury_privileges. Returns NULL, or why the roles could not be
-- created (the owner may lack CREATEROLE). The IMMUTABLE functions that name counters are
-- granted to the reader but stay SECURITY INVOKER: a function that is SECURITY DEFINER or has
-- a search_path cannot be inlined, and the examples' count trigger calls them for every
-- example that changes state. They read no table, so running them as the caller gives nobody
-- anything.
CREATE OR REPLACE FUNCTION jury_grant_roles() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_schema text := current_schema();
    v_role text;
    v_function regprocedure;
    v_name text;
    v_immutable boolean;
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
    -- IMMUTABLE ones (counter names) read no table, so they run as the caller with no setting
    -- of their own: only then can the planner inline them.
    FOR v_function, v_name, v_immutable IN
        SELECT p.oid::regprocedure, p.proname, p.provolatile = 'i' FROM pg_proc p
        WHERE p.pronamespace = v_schema::regnamespace AND p.proname LIKE 'jury\_%' AND p.prokind = 'f'
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, jury_worker, jury_reader', v_function);
        FOR v_role IN SELECT g.role FROM jury_privileges g WHERE g.kind = 'function' AND g.name = v_name LOOP
            IF v_immutable THEN
                EXECUTE format('ALTER FUNCTION %s SECURITY INVOKER RESET search_path', v_function);
            ELSE
                EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', v_function, v_schema);
            END IF;
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

-- Jury's functions run without JIT, whatever the session says. JIT compiles a plan whose
-- estimated cost passes jit_above_cost; on tables of millions of rows that is most statements
-- inside the queue's functions, and compiling took longer than running them (a claim of 128
-- jobs at ten million jobs spent 25 to 70 ms in LLVM). Jury's own sessions SET jit = off, but
-- not through a pooler, and psql and scripts do not; a function's own setting holds whoever
-- calls it. Only plpgsql functions: a setting would keep the planner from inlining an SQL
-- function, and trigger functions run inside the functions that fire them. CREATE OR REPLACE
-- drops a function's settings, so `jury migrate` calls this after every migration it applies.
CREATE OR REPLACE FUNCTION jury_functions_without_jit() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_function regprocedure;
BEGIN
    -- Processes migrating at once take turns: two ALTERs of one function at once would collide.
    PERFORM pg_advisory_xact_lock(hashtext('jury.migrate'));
    FOR v_function IN
        SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'jury\_%' AND p.prokind = 'f'
          AND p.prolang = (SELECT l.oid FROM pg_language l WHERE l.lanname = 'plpgsql')
          AND p.prorettype <> 'trigger'::regtype
          AND NOT coalesce('jit=off' = ANY (p.proconfig), false)
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET jit = off', v_function);
    END LOOP;
END
$$;
