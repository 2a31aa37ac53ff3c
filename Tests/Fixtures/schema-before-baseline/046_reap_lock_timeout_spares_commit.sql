-- The reaper's lock timeout bounds its wait for the examples it locks, and nothing else.
--
-- It was set for the reap's whole transaction, so it also bounded the commit. A reap that
-- takes jobs back notifies jury_jobs, and a notifying commit takes a lock that every database
-- of the server shares (see 039): under load, waiting for another database's notifying commit
-- could outlast the timeout, and the reap, its work done, was rolled back at commit.
DROP FUNCTION jury_reap_expired_leases(int);

CREATE FUNCTION jury_reap_expired_leases(p_limit int DEFAULT 1000, p_lock_timeout_ms int DEFAULT NULL)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    expired bigint[];
    reaped int;
    failed_examples bigint[];
    previous_lock_timeout text := current_setting('lock_timeout');
BEGIN
    SELECT array_agg(x.id) INTO expired FROM (
        SELECT j.id FROM jobs j
        WHERE j.state = 'running' AND j.lease_expires_at < now()
          AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = j.lease_owner AND w.lease_expires_at >= now())
        ORDER BY j.lease_expires_at LIMIT p_limit
    ) x;
    IF expired IS NULL THEN
        RETURN 0;
    END IF;
    IF p_lock_timeout_ms IS NOT NULL THEN
        PERFORM set_config('lock_timeout', p_lock_timeout_ms::text, true);
    END IF;
    PERFORM jury_lock_examples_of(expired);
    PERFORM set_config('lock_timeout', previous_lock_timeout, true);
    WITH locked AS (
        SELECT j.id, j.attempts >= coalesce((r.config ->> 'max_attempts')::int, 5) AS final
        FROM jobs j JOIN runs r ON r.id = j.run_id
        WHERE j.id = ANY (expired) AND j.state = 'running' AND j.lease_expires_at < now()
          AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = j.lease_owner AND w.lease_expires_at >= now())
        FOR UPDATE OF j SKIP LOCKED
    ), reaped_jobs AS (
        UPDATE jobs j
        SET state = CASE WHEN l.final THEN 'failed' ELSE 'pending' END,
            run_after = now(), lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
            last_error = 'lease expired: the worker holding the job stopped beating its heartbeat'
        FROM locked l WHERE j.id = l.id AND j.id = ANY (expired)
        RETURNING j.id, j.example_id, l.final
    )
    SELECT count(*), array_agg(r.example_id) FILTER (WHERE r.final) INTO reaped, failed_examples FROM reaped_jobs r;
    PERFORM jury_settle_examples(failed_examples, true);
    IF reaped > 0 THEN
        PERFORM pg_notify('jury_jobs', '');
    END IF;
    RETURN reaped;
END
$$;
