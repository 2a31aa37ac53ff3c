-- The reducer's claim reads the votes after it holds the examples' locks.
--
-- In 009 one statement locked the ready examples (FOR UPDATE SKIP LOCKED) and joined their
-- votes. A row that a transaction changed after the statement's snapshot is returned in its
-- newest version once locked, but the votes joined to it came from the older snapshot: an
-- example decided early whose last call under way was recorded just then showed no job open
-- (so not early) beside one vote too few. Votes are only added under the example's lock
-- (jury_lock_examples_of), so once the locks are held, a new snapshot sees every vote, and
-- no more can come.
DROP FUNCTION jury_claim_ready_examples(bigint, int);
CREATE FUNCTION jury_claim_ready_examples(p_run bigint, p_limit int)
RETURNS TABLE (example_id bigint, run_id bigint, source_label text, human_label text, reviewed boolean,
               early boolean, judge text, label text)
LANGUAGE plpgsql AS $$
DECLARE
    claimed bigint[];
BEGIN
    SELECT array_agg(x.id ORDER BY x.id) INTO claimed FROM (
        SELECT e.id
        FROM examples e
        WHERE e.state = 'ready' AND (p_run IS NULL OR e.run_id = p_run)
          -- Dawid-Skene decides whole batches at once (jury reduce, or the reducer when one is complete).
          AND e.run_id <> ALL (ARRAY(SELECT r.id FROM runs r WHERE r.config #>> '{consensus,rule}' = 'dawid-skene'))
        ORDER BY e.id LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ) x;
    IF claimed IS NULL THEN
        RETURN;
    END IF;
    -- A new statement, a new snapshot: it sees every vote of the examples now locked.
    RETURN QUERY
    SELECT e.id, e.run_id, e.source_label, e.human_label, e.reviewed_at IS NOT NULL,
           e.jobs_open > 0 OR e.jobs_cancelled > 0, v.judge, v.label
    FROM examples e LEFT JOIN votes v ON v.example_id = e.id
    WHERE e.id = ANY (claimed)
    ORDER BY e.id;
END
$$;
