-- Enqueue counts the jobs it inserts itself, four rows of run_counts per chunk, and the jobs'
-- insert trigger goes.
--
-- That trigger captured every inserted job (200,000 a chunk) in a transition table and
-- sorted them to group them; without it a 50,000-example chunk loaded in about 15% less time
-- (eight chunks each, alternating). jury_insert_lines is the only statement that inserts
-- jobs, and it knows what it inserted: for each judge, one job per new example, waiting if
-- the judge's order is above the lowest, else pending. Claims, records and deletes are
-- still counted by jury_count_jobs, whose insert branch no trigger calls any more.
DROP TRIGGER jobs_count_inserted ON jobs;

CREATE OR REPLACE FUNCTION jury_insert_lines(p_run bigint, p_batch text, p_judges text[], p_orders int[], p_votes_needed int)
RETURNS TABLE (inserted_examples bigint, inserted_jobs bigint, changed_examples bigint, changed_sample text)
LANGUAGE plpgsql AS $$
DECLARE
    v_first int := (SELECT min(o) FROM unnest(p_orders) AS o);
    v_waiting int := (SELECT count(*) FROM unnest(p_orders) AS o WHERE o > v_first);
    v_staged bigint := (SELECT count(*) FROM jury_incoming_lines);
BEGIN
    WITH added AS (
        INSERT INTO examples (run_id, batch, external_id, payload, human_label, source_label,
                              jobs_total, jobs_open, jobs_waiting, votes_needed)
        SELECT p_run, p_batch, l.doc ->> 'id', l.doc - ARRAY['id', 'human_label', 'source_label'],
               l.doc ->> 'human_label', l.doc ->> 'source_label',
               cardinality(p_judges), cardinality(p_judges), v_waiting, p_votes_needed
        FROM jury_incoming_lines l ORDER BY l.line
        ON CONFLICT (run_id, external_id) DO NOTHING
        RETURNING id
    ), added_jobs AS (
        INSERT INTO jobs (run_id, example_id, judge, judge_order, state)
        SELECT p_run, a.id, j.judge, j.judge_order, CASE WHEN j.judge_order > v_first THEN 'waiting' ELSE 'pending' END
        FROM added a CROSS JOIN unnest(p_judges, p_orders) AS j (judge, judge_order)
    )
    SELECT count(*) INTO inserted_examples FROM added;
    inserted_jobs := inserted_examples * cardinality(p_judges);

    IF inserted_examples > 0 THEN
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT p_run, j.judge, CASE WHEN j.judge_order > v_first THEN 'jobs.waiting' ELSE 'jobs.pending' END,
               pg_backend_pid(), inserted_examples
        FROM unnest(p_judges, p_orders) AS j (judge, judge_order)
        ORDER BY 1, 2, 3
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    END IF;

    changed_examples := 0;
    changed_sample := '[]';
    IF inserted_examples < v_staged THEN
        SELECT count(*), coalesce(to_jsonb((array_agg(e.external_id ORDER BY l.line))[1:5]), '[]')::text
        INTO changed_examples, changed_sample
        FROM jury_incoming_lines l
        JOIN examples e ON e.run_id = p_run AND e.external_id = l.doc ->> 'id'
        WHERE e.payload <> l.doc - ARRAY['id', 'human_label', 'source_label'] OR e.batch <> p_batch
           OR e.human_label IS DISTINCT FROM l.doc ->> 'human_label'
           OR e.source_label IS DISTINCT FROM l.doc ->> 'source_label';
    END IF;

    IF inserted_jobs > 0 THEN
        PERFORM pg_notify('jury_jobs', '');
    END IF;
    RETURN NEXT;
END;
$$;
