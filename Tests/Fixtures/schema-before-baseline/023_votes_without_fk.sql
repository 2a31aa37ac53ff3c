-- Votes and jobs carry no foreign keys: each key's check was a lookup and a row lock per row
-- inserted, on the hottest inserts there are (a vote per job; four jobs per example at enqueue).
--
-- Nothing needs them to hold. A vote is inserted only by jury_record_votes, from a job row it
-- has just updated, whose example it has locked; jobs only by jury_insert_lines, with the
-- examples it has just inserted, under the run's lock. What the keys also did, deleting votes
-- and jobs with their example or run, the examples' delete trigger now does: a run's
-- examples still go with it (their key stays), and their jobs and votes go with them.
--
-- A recording locks the examples of its jobs first: it commits before their delete begins,
-- or finds them gone, and their jobs with them, and records nothing.
ALTER TABLE votes DROP CONSTRAINT votes_example_id_fkey, DROP CONSTRAINT votes_run_id_fkey;
ALTER TABLE jobs DROP CONSTRAINT jobs_run_id_fkey;

DROP TRIGGER examples_delete_jobs ON examples;
DROP FUNCTION jury_delete_jobs_of_examples();

CREATE FUNCTION jury_delete_work_of_examples() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM jobs j USING old_examples o WHERE j.example_id = o.id;
    DELETE FROM votes v USING old_examples o WHERE v.example_id = o.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER examples_delete_work AFTER DELETE ON examples REFERENCING OLD TABLE AS old_examples
FOR EACH STATEMENT EXECUTE FUNCTION jury_delete_work_of_examples();

-- Votes that go with their example (a chunk of `jury run purge --everything`) leave the
-- run's counts, as jobs do; a deleted run's counts went with it.
CREATE OR REPLACE FUNCTION jury_count_votes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT d.run_id, d.judge, d.counter, pg_backend_pid(), sum(d.n)
        FROM (
            SELECT n.run_id, n.judge, 'votes.tokens' AS counter,
                   coalesce(n.prompt_tokens, 0) + coalesce(n.completion_tokens, 0) AS n
            FROM new_votes n
            UNION ALL
            SELECT n.run_id, n.judge, 'votes.minute.' || to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI'), 1
            FROM new_votes n
        ) d
        GROUP BY d.run_id, d.judge, d.counter
        HAVING sum(d.n) <> 0
        ORDER BY d.run_id, d.judge, d.counter
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT d.run_id, d.judge, d.counter, pg_backend_pid(), -sum(d.n)
        FROM (
            SELECT o.run_id, o.judge, 'votes.tokens' AS counter,
                   coalesce(o.prompt_tokens, 0) + coalesce(o.completion_tokens, 0) AS n
            FROM old_votes o
            UNION ALL
            SELECT o.run_id, o.judge, 'votes.minute.' || to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI'), 1
            FROM old_votes o
            -- Minutes older than an hour are no longer kept (jury_compact_counts drops them).
            WHERE to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI')
                  >= to_char((now() - interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI')
        ) d
        WHERE EXISTS (SELECT 1 FROM runs r WHERE r.id = d.run_id)
        GROUP BY d.run_id, d.judge, d.counter
        HAVING sum(d.n) <> 0
        ORDER BY d.run_id, d.judge, d.counter
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER votes_count_deleted AFTER DELETE ON votes REFERENCING OLD TABLE AS old_votes
FOR EACH STATEMENT EXECUTE FUNCTION jury_count_votes();
