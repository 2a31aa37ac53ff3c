-- Enqueue from the corpus lines themselves.
--
-- `jury enqueue` checks every line first (JSON, id, labels, NUL), then streams the lines as
-- they are, with their line numbers, into a staging table of jsonb: PostgreSQL's parser takes
-- out the id and the labels and keeps the rest as the payload, where the enqueuing process
-- parsed and printed every line a second time before. The changed-lines report is skipped
-- when every line was new, the usual case.
DROP FUNCTION jury_enqueue_incoming(bigint, text, text[], int[], int);

-- Moves the staged lines (temporary table jury_incoming_lines (line int, doc jsonb)) into the
-- run: one example per line whose id the run lacks, one job per example and judge; jobs of
-- judges above the lowest order wait. Reports what it inserted and the ids already in the run
-- with a different line (their count and the first five).
CREATE FUNCTION jury_enqueue_lines(p_run bigint, p_batch text, p_judges text[], p_orders int[], p_votes_needed int)
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
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM added), (SELECT count(*) FROM added_jobs)
    INTO inserted_examples, inserted_jobs;

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
