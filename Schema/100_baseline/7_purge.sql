-- Purging finished runs: their queue rows go, in short transactions, and vacuum can reuse the
-- space.
--
-- A run is finished once none of its examples is still voting or ready and no job of it is
-- running (or it was cancelled and its last calls have ended). `jury run purge` then deletes
-- its jobs, which are only the queue's bookkeeping (with them go the invalid answers kept for
-- people): the examples, votes and verdicts stay, and so do the counts status shows. With
-- --everything the run goes entirely.
--
-- Both work example by example, in id order, a chunk per call and transaction, so that a purge
-- of millions of rows never holds locks or a snapshot for long, and can be stopped and started
-- again.

-- Why the run cannot be purged yet, or NULL when it can.
CREATE OR REPLACE FUNCTION jury_purge_refusal(p_run bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN c.running > 0 THEN c.running || ' of its jobs are still running; wait for their calls to end'
        WHEN r.state <> 'cancelled' AND c.open > 0
            THEN c.open || ' of its examples are not decided yet; wait, or cancel the run first'
        END
    FROM runs r
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(k.n) FILTER (WHERE k.counter = 'jobs.running'), 0) AS running,
               coalesce(sum(k.n) FILTER (WHERE k.counter IN ('examples.voting', 'examples.ready')), 0) AS open
        FROM run_counts k WHERE k.run_id = r.id
    ) c
    WHERE r.id = p_run
$$;

-- Deletes the jobs (and invalid answers) of up to p_limit examples of the run with ids above
-- p_after; returns the last example id it went through, or NULL when there were none left.
-- The counts stay.
CREATE OR REPLACE FUNCTION jury_purge_jobs(p_run bigint, p_after bigint, p_limit int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    chunk bigint[];
BEGIN
    SELECT array_agg(x.id ORDER BY x.id) INTO chunk FROM (
        SELECT e.id FROM examples e WHERE e.run_id = p_run AND e.id > p_after ORDER BY e.id LIMIT p_limit
    ) x;
    IF chunk IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('jury.purging', 'on', true);
    DELETE FROM jobs j WHERE j.example_id = ANY (chunk);
    PERFORM set_config('jury.purging', 'off', true);
    DELETE FROM invalid_answers a WHERE a.example_id = ANY (chunk);
    RETURN chunk[cardinality(chunk)];
END
$$;

-- Deletes up to p_limit examples of the run with everything they hold (jobs, votes, verdicts,
-- their history, invalid answers); once none is left, the run itself. The chunk's verdicts go
-- before their examples, while their batch can still be counted out. Returns how many
-- examples it deleted; 0 when the run is gone.
CREATE OR REPLACE FUNCTION jury_purge_run(p_run bigint, p_limit int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    chunk bigint[];
BEGIN
    SELECT array_agg(x.id ORDER BY x.id) INTO chunk FROM (
        SELECT e.id FROM examples e WHERE e.run_id = p_run ORDER BY e.id LIMIT p_limit
    ) x;
    IF chunk IS NULL THEN
        DELETE FROM runs WHERE id = p_run;
        RETURN 0;
    END IF;
    DELETE FROM verdicts v WHERE v.example_id = ANY (chunk);
    DELETE FROM examples e WHERE e.id = ANY (chunk);
    RETURN cardinality(chunk);
END
$$;
