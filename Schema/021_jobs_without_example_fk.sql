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
