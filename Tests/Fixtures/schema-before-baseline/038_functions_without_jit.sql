-- Jury's functions run without JIT, whatever the session says.
--
-- JIT compiles a plan whose estimated cost passes jit_above_cost. On tables of millions of
-- rows that is most of the statements inside the queue's functions, and compiling them took
-- longer than running them: a claim of 128 jobs at ten million jobs spent 25 to 70 ms in LLVM,
-- called from psql. Jury's own sessions SET jit = off, but not with --poll (a pooler's server
-- sessions are shared, so the setting belongs on the role), and psql and scripts do not. A
-- function's own setting holds for every statement it runs, whoever calls it.
--
-- Only plpgsql functions: a setting would keep the planner from inlining an SQL function, and
-- trigger functions run inside the functions that fire them. CREATE OR REPLACE drops a
-- function's settings, so `jury migrate` calls this after every migration it applies.
CREATE FUNCTION jury_functions_without_jit() RETURNS void
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

SELECT jury_functions_without_jit();
