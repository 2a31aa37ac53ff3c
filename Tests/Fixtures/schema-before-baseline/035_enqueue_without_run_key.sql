-- Enqueue's example inserts cost less: no foreign key to the run, and the sort kept in memory.
--
-- Measured on one 50,000-example chunk of a 1,000,000-example enqueue (EXPLAIN ANALYZE of
-- jury_insert_lines' insert): the key's check, a row-level trigger that looks the run up for
-- every example, took 185-212 ms of 1.8-2.0 s; ordering the staged lines by their number
-- spilled to disk at the default work_mem of 4 MB (7 MB for that chunk). Without both, the
-- chunk took 1.5-1.9 s.
--
-- Nothing needs the key to hold on insert: the only statement that inserts examples
-- (jury_insert_lines) runs after jury_lock_run_for_work, which holds the run's row until the
-- chunk commits, so the run cannot go in between; that function now also refuses a run that
-- no longer exists, which the key used to do. Deleting the run's examples with it, what the
-- key's ON DELETE CASCADE did, a statement-level trigger now does, as 021 did for jobs.
ALTER TABLE examples DROP CONSTRAINT examples_run_id_fkey;

CREATE FUNCTION jury_delete_examples_of_runs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM examples e USING old_runs o WHERE e.run_id = o.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER runs_delete_examples AFTER DELETE ON runs REFERENCING OLD TABLE AS old_runs
FOR EACH STATEMENT EXECUTE FUNCTION jury_delete_examples_of_runs();

-- As in 016, and a run that is gone is an error rather than a lock on nothing.
CREATE OR REPLACE FUNCTION jury_lock_run_for_work(p_run bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM runs WHERE id = p_run AND state = 'done') THEN
        PERFORM 1 FROM runs WHERE id = p_run FOR NO KEY UPDATE;
    ELSE
        PERFORM 1 FROM runs WHERE id = p_run FOR SHARE;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % does not exist (it was deleted)', p_run USING ERRCODE = 'foreign_key_violation';
    END IF;
END;
$$;

-- A chunk's lines (50,000 by default) are sorted by number before they are inserted, so that
-- example ids follow the file; 64 MB keeps that sort in memory for lines up to about a kilobyte.
ALTER FUNCTION jury_insert_lines(bigint, text, text[], int[], int) SET work_mem = '64MB';
