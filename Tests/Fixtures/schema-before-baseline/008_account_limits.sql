-- Rate limits per account, not per run and judge: judges name a limit_key (default: the
-- provider and the API key variable), and every run and judge on one key share one budget of
-- requests and tokens per minute, across every worker on every machine. Token use is
-- estimated before a call and corrected from the usage the provider reports after it. The
-- limiter follows what providers say: their remaining-budget headers and their 429s hold the
-- whole fleet for that key.
CREATE TABLE account_limits (
    limit_key            text PRIMARY KEY,
    -- NULL: no such limit (a key can still be held after a 429).
    requests_per_second  double precision CHECK (requests_per_second > 0),
    tokens_per_second    double precision CHECK (tokens_per_second > 0),
    -- Available now, as of updated_at; refilled lazily. Each bucket holds one second's worth
    -- (at least one request, at least one call's tokens): bursts stay within what any provider allows.
    requests             double precision NOT NULL DEFAULT 0,
    tokens               double precision NOT NULL DEFAULT 0,
    held_until           timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The limits of the runs created before: per run and judge they become per account.
INSERT INTO account_limits (limit_key, requests_per_second, requests)
SELECT DISTINCT ON (x.key) x.key, x.rpm / 60.0, greatest(1, x.rpm / 60.0)
FROM (
    SELECT coalesce(j ->> 'limit_key',
                    (j ->> 'provider') || ':' || coalesce(j ->> 'api_key_env', j ->> 'base_url')) AS key,
           (j ->> 'requests_per_minute')::double precision AS rpm
    FROM runs r CROSS JOIN LATERAL jsonb_array_elements(r.config -> 'judges') AS j
    WHERE j ? 'requests_per_minute'
) x
ORDER BY x.key, x.rpm;

DROP FUNCTION jury_take_permits(bigint, text, int);
DROP FUNCTION jury_return_permits(bigint, text, int);
DROP FUNCTION jury_hold_permits(bigint, text, double precision);
DROP FUNCTION jury_create_run(text, jsonb, text[], double precision[]);
DROP TABLE judge_limits;

-- Defines (or updates) accounts' limits; a limit left out keeps the one already there.
CREATE FUNCTION jury_define_limits(p_keys text[], p_requests_per_second double precision[],
                                   p_tokens_per_second double precision[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO account_limits AS a (limit_key, requests_per_second, tokens_per_second, requests, tokens)
    SELECT DISTINCT ON (d.key) d.key, d.rps, d.tps, greatest(1, coalesce(d.rps, 0)), coalesce(d.tps, 0)
    FROM unnest(p_keys, p_requests_per_second, p_tokens_per_second) AS d (key, rps, tps)
    ORDER BY d.key
    ON CONFLICT (limit_key) DO UPDATE
    SET requests_per_second = coalesce(excluded.requests_per_second, a.requests_per_second),
        tokens_per_second = coalesce(excluded.tokens_per_second, a.tokens_per_second)
$$;

-- Stores a run and its judges' account limits. Returns the new run's id, or NULL when a run of
-- that name exists.
CREATE FUNCTION jury_create_run(p_name text, p_config jsonb, p_keys text[], p_requests_per_second double precision[],
                                p_tokens_per_second double precision[])
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO runs (name, config) VALUES (p_name, p_config) ON CONFLICT (name) DO NOTHING RETURNING id INTO v_id;
    IF v_id IS NOT NULL THEN
        PERFORM jury_define_limits(p_keys, p_requests_per_second, p_tokens_per_second);
    END IF;
    RETURN v_id;
END;
$$;

-- Takes permits for up to p_wanted calls of about p_tokens_each tokens on account p_key.
-- Returns how many it got and, when fewer than wanted, the seconds until the next is due.
-- A key with no limits grants everything, unless it is held after a 429.
CREATE FUNCTION jury_take_permits(p_key text, p_wanted int, p_tokens_each double precision)
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
CREATE FUNCTION jury_adjust_permits(p_key text, p_requests double precision, p_tokens double precision)
RETURNS void
LANGUAGE sql AS $$
    UPDATE account_limits
    SET requests = least(greatest(1, coalesce(requests_per_second, 0)), requests + p_requests),
        tokens = least(greatest(coalesce(tokens_per_second, 0), tokens), tokens + p_tokens)
    WHERE limit_key = p_key
$$;

-- The provider answered 429 (or said nothing is left): no worker calls on this account for
-- p_seconds.
CREATE FUNCTION jury_hold_account(p_key text, p_seconds double precision) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO account_limits AS a (limit_key, held_until)
    VALUES (p_key, clock_timestamp() + make_interval(secs => p_seconds))
    ON CONFLICT (limit_key) DO UPDATE
    SET held_until = greatest(coalesce(a.held_until, clock_timestamp()), excluded.held_until)
$$;

-- What the provider's headers said is left: the buckets hold no more than that, and refill
-- at their own pace. An account without a bucket for what ran out (no limit configured) is
-- held until the provider's reset, at most a minute.
CREATE FUNCTION jury_observe_account(p_key text, p_remaining_requests double precision,
                                     p_requests_reset double precision, p_remaining_tokens double precision,
                                     p_tokens_reset double precision) RETURNS void
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

CREATE VIEW jury_account_limits AS
SELECT limit_key, requests_per_second * 60 AS requests_per_minute, tokens_per_second * 60 AS tokens_per_minute,
       held_until, held_until > clock_timestamp() AS held
FROM account_limits
ORDER BY limit_key;
