-- A run's progress and spend over time, for the web app's charts: the kept counters say where
-- a run is now, and keep votes per minute for an hour only; a run lasts days.
--
-- Every reducer, once a minute, writes one row per active run from the counters (the same
-- sums `jury status` reads, a few rows per run): a week is 10,080 rows a run, gone with it.
CREATE TABLE run_history (
    run_id     bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    minute     timestamptz NOT NULL,
    examples   bigint NOT NULL,
    decided    bigint NOT NULL,
    votes      bigint NOT NULL,
    cost_usd   double precision NOT NULL,
    PRIMARY KEY (run_id, minute)
);

-- Records this minute's row of each active run, once whichever reducers call it.
CREATE OR REPLACE FUNCTION jury_record_run_history() RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_written int;
BEGIN
    INSERT INTO run_history (run_id, minute, examples, decided, votes, cost_usd)
    SELECT r.id, date_trunc('minute', now()), p.examples, p.decided, p.done,
           coalesce((SELECT sum(s.cost_usd) FROM judge_spend s WHERE s.run_id = r.id), 0)
    FROM runs r JOIN jury_run_progress p ON p.run = r.name
    WHERE r.state = 'active'
    ON CONFLICT (run_id, minute) DO NOTHING;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    RETURN v_written;
END;
$$;

INSERT INTO jury_privileges (role, kind, name) VALUES ('jury_worker', 'function', 'jury_record_run_history')
ON CONFLICT DO NOTHING;
