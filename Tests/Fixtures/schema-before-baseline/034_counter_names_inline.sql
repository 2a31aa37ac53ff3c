-- The counter names are computed inline again.
--
-- jury_grant_roles made every function a role may call SECURITY DEFINER with a fixed
-- search_path, the four IMMUTABLE ones that name counters too (granted to the reader for the
-- views). A function with either cannot be inlined: each call went through the SQL function
-- executor and a save and restore of search_path. The examples' count trigger calls
-- jury_batch_counter twice for every example that changes state, and took 7.3 microseconds a
-- vote of the worker's 43.5 in recording (pgbench, one client, Jury's claim and record on
-- 50,000 examples, pg_stat_statements); inlined, 1.4. These functions read no table (that is
-- what IMMUTABLE promises), so running them as the caller gives nobody anything. `jury
-- migrate` runs this function after every migration it applies, which puts them right.

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
