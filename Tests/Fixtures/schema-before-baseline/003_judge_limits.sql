-- Rate limits shared by every worker on every machine: a token bucket per run and judge,
-- refilled at requests_per_minute / 60 tokens a second and holding at most one second's worth
-- (at least one request). Workers take permits before they claim jobs, and give back those
-- they could not use, so a judge is never called faster than its limit, however many
-- processes call it.
CREATE TABLE judge_limits (
    run_id      bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    judge       text NOT NULL,
    per_second  double precision NOT NULL CHECK (per_second > 0),
    burst       double precision NOT NULL CHECK (burst >= 1),
    tokens      double precision NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, judge)
);

-- Takes up to p_wanted permits to call judge p_judge of run p_run; returns how many it got.
-- A judge without a limit gets all it asks for.
CREATE FUNCTION jury_take_permits(p_run bigint, p_judge text, p_wanted int) RETURNS int
LANGUAGE sql AS $$
    WITH current AS (
        SELECT l.run_id, l.judge,
               least(l.burst, l.tokens + l.per_second * extract(epoch FROM clock_timestamp() - l.updated_at)) AS available
        FROM judge_limits l
        WHERE l.run_id = p_run AND l.judge = p_judge
        FOR UPDATE
    ), taken AS (
        UPDATE judge_limits l
        SET tokens = c.available - least(p_wanted, greatest(0, floor(c.available))::int),
            updated_at = clock_timestamp()
        FROM current c
        WHERE l.run_id = c.run_id AND l.judge = c.judge
        RETURNING least(p_wanted, greatest(0, floor(c.available))::int) AS granted
    )
    SELECT coalesce((SELECT t.granted FROM taken t), p_wanted)
$$;

-- Gives back permits taken but not used (fewer jobs were claimable than permits taken).
CREATE FUNCTION jury_return_permits(p_run bigint, p_judge text, p_count int) RETURNS void
LANGUAGE sql AS $$
    UPDATE judge_limits SET tokens = least(burst, tokens + p_count)
    WHERE run_id = p_run AND judge = p_judge
$$;

-- The provider answered 429: empties the judge's bucket so that no worker calls it for
-- p_seconds (its Retry-After), then refills it at the usual pace.
CREATE FUNCTION jury_hold_permits(p_run bigint, p_judge text, p_seconds double precision) RETURNS void
LANGUAGE sql AS $$
    UPDATE judge_limits
    SET tokens = least(least(burst, tokens + per_second * extract(epoch FROM clock_timestamp() - updated_at)),
                       -per_second * p_seconds),
        updated_at = clock_timestamp()
    WHERE run_id = p_run AND judge = p_judge
$$;
