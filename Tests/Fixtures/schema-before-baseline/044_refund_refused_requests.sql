-- A judge whose requests the provider refuses as malformed stops on every worker (a worker
-- sees the same HTTP 400 on several different examples in a row, and gives back the attempts
-- of the calls under way). The calls that made the streak each took an attempt from its job,
-- though the fault was the request's, not the example's. `jury judge resume`, run once the
-- judge is fixed, gives each waiting job whose last call was refused that attempt back, in the
-- transaction that closes the breaker: by then every worker has recorded what it held.
--
-- Jobs under way are skipped (SKIP LOCKED, in id order, so that two refunds never wait on each
-- other).
CREATE FUNCTION jury_refund_refused_requests(p_run bigint, p_judge text) RETURNS int
LANGUAGE sql AS $$
    WITH refused AS (
        SELECT j.id FROM jobs j
        WHERE j.run_id = p_run AND j.judge = p_judge AND j.state = 'pending' AND j.attempts > 0
          AND j.last_error LIKE 'bad request:%'
        ORDER BY j.id
        FOR UPDATE SKIP LOCKED
    ), refunded AS (
        UPDATE jobs j SET attempts = j.attempts - 1, updated_at = now()
        FROM refused r WHERE j.id = r.id
        RETURNING 1
    )
    SELECT count(*)::int FROM refunded
$$;
