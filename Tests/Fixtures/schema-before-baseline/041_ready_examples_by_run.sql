-- A reducer's claim reads the ready examples of its own runs only.
--
-- `examples_ready` held the ready examples of every run in id order, and the claim walked it
-- from the start, passing over those of runs it does not decide: the examples of a Dawid-Skene
-- run, which stay ready until their batch is complete (a whole corpus may be), or those of a
-- run another reducer serves. Each claim read all of them again. In `jury bench`, with 32,000
-- ready examples of another run in the database, a claim took 25-40 ms and the reducer's claims
-- cost about 95 µs of PostgreSQL's time per example decided.
--
-- The index now leads with the run, and the claim takes each run's first ready examples in
-- turn, locking only those it returns (the outer LIMIT stops the scans). A reducer of all
-- runs takes from the lowest run id first, as it did (ids grow with the runs).
--
-- Building the index reads the examples table once and holds back writes to it meanwhile:
-- seconds on a table of millions.

CREATE INDEX examples_ready_by_run ON examples (run_id, id) WHERE state = 'ready';
DROP INDEX examples_ready;

-- As in 031, each run through the new index. CREATE OR REPLACE drops the SET clauses, so
-- 033's is stated again (jit = off comes back with `jury migrate`, see 038).
CREATE OR REPLACE FUNCTION jury_claim_ready_examples(p_run bigint, p_limit int)
RETURNS TABLE (example_id bigint, run_id bigint, source_label text, human_label text, reviewed boolean,
               early boolean, judge text, label text, since_last_vote_seconds double precision)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    decided_here bigint[];
    claimed bigint[];
BEGIN
    -- Dawid-Skene runs are decided a batch at a time, elsewhere.
    decided_here := ARRAY(
        SELECT r.id FROM runs r
        WHERE (p_run IS NULL OR r.id = p_run) AND r.config #>> '{consensus,rule}' IS DISTINCT FROM 'dawid-skene'
        ORDER BY r.id);
    SELECT array_agg(x.id ORDER BY x.id) INTO claimed FROM (
        SELECT c.id
        FROM unnest(decided_here) AS d (run_id)
        CROSS JOIN LATERAL (
            SELECT e.id
            FROM examples e
            WHERE e.state = 'ready' AND e.run_id = d.run_id
            ORDER BY e.id LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        ) c
        LIMIT p_limit
    ) x;
    IF claimed IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT e.id, e.run_id, e.source_label, e.human_label, e.reviewed_at IS NOT NULL,
           e.jobs_open > 0 OR e.jobs_cancelled > 0, v.judge, v.label,
           extract(epoch FROM clock_timestamp() - max(v.created_at) OVER (PARTITION BY e.id))::float8
    FROM examples e LEFT JOIN votes v ON v.example_id = e.id
    WHERE e.id = ANY (claimed)
    ORDER BY e.id;
END
$$;
