-- Limits, breakers and spend: what keeps a fleet of workers within what the providers and the
-- budget allow.
--
-- - Rate limits are per account (account_limits), shared by every run, judge and worker on the
--   key. A worker takes permits before it claims jobs and gives back what it did not use; the
--   tokens a call was estimated at are corrected from the usage the provider reports. A 429, or
--   headers saying nothing is left, hold the key for the whole fleet.
-- - A breaker stops a judge fleet-wide (no worker claims its jobs) until a person closes it.
-- - A run's spend is kept per judge and backend by jury_record_votes; a run over its budget is
--   no longer claimed.

-- Defines (or updates) accounts' limits; a limit left out keeps the one already there.
CREATE OR REPLACE FUNCTION jury_define_limits(
    p_keys text[], p_requests_per_second double precision[], p_tokens_per_second double precision[]
) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO account_limits AS a (limit_key, requests_per_second, tokens_per_second, requests, tokens)
    SELECT DISTINCT ON (d.key) d.key, d.rps, d.tps, greatest(1, coalesce(d.rps, 0)), coalesce(d.tps, 0)
    FROM unnest(p_keys, p_requests_per_second, p_tokens_per_second) AS d (key, rps, tps)
    ORDER BY d.key
    ON CONFLICT (limit_key) DO UPDATE
    SET requests_per_second = coalesce(excluded.requests_per_second, a.requests_per_second),
        tokens_per_second = coalesce(excluded.tokens_per_second, a.tokens_per_second)
$$;

-- Takes permits for up to p_wanted calls of about p_tokens_each tokens on account p_key.
-- Returns how many it got and, when fewer than wanted, the seconds until the next is due.
-- A key with no limits grants everything, unless it is held after a 429.
CREATE OR REPLACE FUNCTION jury_take_permits(p_key text, p_wanted int, p_tokens_each double precision)
RETURNS TABLE (granted int, wait_seconds double precision)
LANGUAGE plpgsql AS $$
DECLARE
    l account_limits;
    v_each double precision := greatest(p_tokens_each, 1);
    elapsed double precision;
    r double precision;
    t double precision;
    n int := p_wanted;
    v_wait double precision := 0;
BEGIN
    SELECT * INTO l FROM account_limits WHERE limit_key = p_key FOR UPDATE;
    IF NOT FOUND THEN
        granted := p_wanted;
        wait_seconds := 0;
        RETURN NEXT;
        RETURN;
    END IF;
    IF l.held_until > clock_timestamp() THEN
        granted := 0;
        wait_seconds := extract(epoch FROM l.held_until - clock_timestamp());
        RETURN NEXT;
        RETURN;
    END IF;
    elapsed := greatest(0, extract(epoch FROM clock_timestamp() - l.updated_at));
    r := l.requests;
    t := l.tokens;
    IF l.requests_per_second IS NOT NULL THEN
        r := least(greatest(1, l.requests_per_second), l.requests + l.requests_per_second * elapsed);
        n := least(n, greatest(0, floor(r))::int);
    END IF;
    IF l.tokens_per_second IS NOT NULL THEN
        t := least(greatest(l.tokens_per_second, v_each), l.tokens + l.tokens_per_second * elapsed);
        n := least(n, greatest(0, floor(t / v_each))::int);
    END IF;
    UPDATE account_limits SET requests = r - n, tokens = t - n * v_each, updated_at = clock_timestamp()
    WHERE limit_key = p_key;
    IF n < p_wanted THEN
        IF l.requests_per_second IS NOT NULL AND r - n < 1 THEN
            v_wait := greatest(v_wait, (1 - (r - n)) / l.requests_per_second);
        END IF;
        IF l.tokens_per_second IS NOT NULL AND t - n * v_each < v_each THEN
            v_wait := greatest(v_wait, (v_each - (t - n * v_each)) / l.tokens_per_second);
        END IF;
    END IF;
    granted := n;
    wait_seconds := v_wait;
    RETURN NEXT;
END;
$$;

-- Gives back permits (requests not used, tokens estimated but not spent), or takes more
-- (negative: tokens spent beyond the estimate), within the buckets' size.
CREATE OR REPLACE FUNCTION jury_adjust_permits(p_key text, p_requests double precision, p_tokens double precision)
RETURNS void
LANGUAGE sql AS $$
    UPDATE account_limits
    SET requests = least(greatest(1, coalesce(requests_per_second, 0)), requests + p_requests),
        tokens = least(greatest(coalesce(tokens_per_second, 0), tokens), tokens + p_tokens)
    WHERE limit_key = p_key
$$;

-- The provider answered 429 (or said nothing is left): no worker calls on this account for
-- p_seconds.
CREATE OR REPLACE FUNCTION jury_hold_account(p_key text, p_seconds double precision) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO account_limits AS a (limit_key, held_until)
    VALUES (p_key, clock_timestamp() + make_interval(secs => p_seconds))
    ON CONFLICT (limit_key) DO UPDATE
    SET held_until = greatest(coalesce(a.held_until, clock_timestamp()), excluded.held_until)
$$;

-- What the provider's headers said is left: the buckets hold no more than that, and refill
-- at their own pace. An account without a bucket for what ran out (no limit configured) is
-- held until the provider's reset, at most a minute.
CREATE OR REPLACE FUNCTION jury_observe_account(
    p_key text, p_remaining_requests double precision, p_requests_reset double precision,
    p_remaining_tokens double precision, p_tokens_reset double precision
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    l account_limits;
BEGIN
    UPDATE account_limits
    SET requests = CASE WHEN p_remaining_requests IS NULL THEN requests ELSE least(requests, p_remaining_requests) END,
        tokens = CASE WHEN p_remaining_tokens IS NULL THEN tokens ELSE least(tokens, p_remaining_tokens) END
    WHERE limit_key = p_key
    RETURNING * INTO l;
    IF p_remaining_requests < 1 AND p_requests_reset > 0 AND l.requests_per_second IS NULL THEN
        PERFORM jury_hold_account(p_key, least(p_requests_reset, 60));
    END IF;
    IF p_remaining_tokens < 1 AND p_tokens_reset > 0 AND l.tokens_per_second IS NULL THEN
        PERFORM jury_hold_account(p_key, least(p_tokens_reset, 60));
    END IF;
END;
$$;

-- Opens a judge's breaker; the first reason stays. Returns whether this call opened it.
CREATE OR REPLACE FUNCTION jury_open_breaker(p_run bigint, p_judge text, p_reason text, p_owner text) RETURNS boolean
LANGUAGE sql AS $$
    WITH opened AS (
        INSERT INTO judge_breakers (run_id, judge, reason, opened_by) VALUES (p_run, p_judge, p_reason, p_owner)
        ON CONFLICT (run_id, judge) DO NOTHING
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM opened)
$$;

-- Closes it: the judge's pending jobs are claimable at once (not after the delay they were
-- given back with), and the workers are woken. Returns whether it was open.
CREATE OR REPLACE FUNCTION jury_close_breaker(p_run bigint, p_judge text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_closed int;
BEGIN
    DELETE FROM judge_breakers WHERE run_id = p_run AND judge = p_judge;
    GET DIAGNOSTICS v_closed = ROW_COUNT;
    IF v_closed > 0 THEN
        UPDATE jobs SET run_after = now()
        WHERE run_id = p_run AND judge = p_judge AND state = 'pending' AND run_after > now();
        PERFORM pg_notify('jury_jobs', '');
    END IF;
    RETURN v_closed > 0;
END;
$$;

-- Whether a run may still spend: it has no budget, or has spent less than it. plpgsql, so
-- that the claim, which asks once per run, does not parse and plan it at every call.
CREATE OR REPLACE FUNCTION jury_run_within_budget(p_run bigint) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT (r.config ->> 'budget_usd') IS NULL
                   OR coalesce((SELECT sum(s.cost_usd) FROM judge_spend s WHERE s.run_id = r.id), 0)
                      < (r.config ->> 'budget_usd')::double precision
            FROM runs r WHERE r.id = p_run);
END
$$;
