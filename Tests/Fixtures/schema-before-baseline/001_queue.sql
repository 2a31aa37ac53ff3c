-- Jury's data model: runs, examples, one job per example and judge, votes, verdicts, workers.
-- The functions at the end are the queue's transitions; every process goes through them,
-- so each transition is one statement, atomic, and takes its locks in one order
-- (examples by id, then jobs) so that concurrent workers cannot deadlock.

CREATE TABLE runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    config      jsonb NOT NULL,
    state       text NOT NULL DEFAULT 'active'
                CHECK (state IN ('active', 'paused', 'cancelled', 'done')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE examples (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id        bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    batch         text NOT NULL,
    external_id   text NOT NULL,
    payload       jsonb NOT NULL,
    human_label   text,
    source_label  text,
    jobs_total    int NOT NULL,
    -- Jobs neither done nor failed; the example is ready for the reducer when none are left.
    jobs_open     int NOT NULL,
    jobs_failed   int NOT NULL DEFAULT 0,
    -- The fewest votes with which the run's rule can still agree: once more jobs than
    -- jobs_total - votes_needed have failed, the example is ready (it cannot agree).
    votes_needed  int NOT NULL,
    state         text NOT NULL DEFAULT 'voting' CHECK (state IN ('voting', 'ready', 'decided')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, external_id)
);
CREATE INDEX examples_ready ON examples (id) WHERE state = 'ready';
CREATE INDEX examples_run_batch ON examples (run_id, batch);

CREATE TABLE jobs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id            bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    example_id        bigint NOT NULL REFERENCES examples (id) ON DELETE CASCADE,
    judge             text NOT NULL,
    state             text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts          int NOT NULL DEFAULT 0,
    run_after         timestamptz NOT NULL DEFAULT now(),
    lease_owner       text,
    lease_expires_at  timestamptz,
    last_error        text,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (example_id, judge)
);
-- Claims walk this partial index only: finished jobs leave it and do not slow the queue.
CREATE INDEX jobs_claimable ON jobs (run_id, judge, run_after, id) WHERE state = 'pending';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_failed ON jobs (run_id, judge) WHERE state = 'failed';
-- Few jobs carry an error at a time (a vote clears it): the latest per judge is cheap to find.
CREATE INDEX jobs_erring ON jobs (run_id, judge, updated_at) WHERE last_error IS NOT NULL;

CREATE TABLE votes (
    example_id         bigint NOT NULL REFERENCES examples (id) ON DELETE CASCADE,
    judge              text NOT NULL,
    run_id             bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    label              text NOT NULL,
    rationale          text,
    latency_ms         int,
    prompt_tokens      int,
    completion_tokens  int,
    attempts           int NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (example_id, judge)
);
CREATE INDEX votes_run_created ON votes (run_id, created_at);

CREATE TABLE verdicts (
    example_id             bigint PRIMARY KEY REFERENCES examples (id) ON DELETE CASCADE,
    run_id                 bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    label                  text,
    status                 text NOT NULL CHECK (status IN ('agreed', 'disagreed', 'insufficient')),
    -- Share of the votes cast that went to the most voted label.
    agreement              double precision NOT NULL,
    votes                  int NOT NULL,
    rule                   text NOT NULL,
    -- True when the verdict's label differs from what the production log said.
    conflicts_with_source  boolean,
    decided_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX verdicts_run_status ON verdicts (run_id, status);

CREATE TABLE workers (
    id            text PRIMARY KEY,
    role          text NOT NULL,
    host          text NOT NULL,
    pid           int NOT NULL,
    in_flight     int NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz
);

-- The example's state once its counters have moved: ready for the reducer when no job is
-- open, or when so many have failed that the rule can no longer agree.
CREATE FUNCTION jury_next_state(
    p_state text, p_jobs_open int, p_jobs_total int, p_jobs_failed int, p_votes_needed int
) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_state = 'voting' AND (p_jobs_open = 0 OR p_jobs_total - p_jobs_failed < p_votes_needed)
        THEN 'ready' ELSE p_state END
$$;

-- Locks the examples of these jobs in id order. Every transition that touches examples
-- calls it first, so two transactions never wait on each other's examples in a cycle.
-- (Lookups by `= ANY (array)` throughout: the planner then walks the primary keys instead
-- of hashing whole tables, which it otherwise does for row sets it cannot estimate.)
CREATE FUNCTION jury_lock_examples_of(p_jobs bigint[]) RETURNS void
LANGUAGE sql AS $$
    SELECT 1 FROM examples e
    WHERE e.id = ANY (ARRAY(SELECT j.example_id FROM jobs j WHERE j.id = ANY (p_jobs)))
    ORDER BY e.id FOR UPDATE
$$;

-- Claims up to p_limits[i] pending jobs of judge p_judges[i] in run p_runs[i] for p_owner,
-- leased for p_lease_seconds. Skips rows other workers hold, so claims never wait.
CREATE FUNCTION jury_claim_jobs(
    p_owner text, p_lease_seconds double precision, p_runs bigint[], p_judges text[], p_limits int[]
) RETURNS TABLE (job_id bigint, run_id bigint, example_id bigint, judge text, attempts int,
                 external_id text, payload jsonb)
LANGUAGE sql AS $$
    WITH wanted AS (
        SELECT * FROM unnest(p_runs, p_judges, p_limits) AS w (run_id, judge, wanted)
    ), picked AS (
        SELECT c.id
        FROM wanted w
        CROSS JOIN LATERAL (
            SELECT j.id FROM jobs j
            WHERE j.state = 'pending' AND j.run_id = w.run_id AND j.judge = w.judge AND j.run_after <= now()
            ORDER BY j.run_after, j.id
            LIMIT w.wanted
            FOR UPDATE SKIP LOCKED
        ) c
    ), claimed AS (
        UPDATE jobs j
        SET state = 'running', attempts = j.attempts + 1, lease_owner = p_owner,
            lease_expires_at = now() + make_interval(secs => p_lease_seconds), updated_at = now()
        FROM picked
        WHERE j.id = picked.id AND j.id = ANY (ARRAY(SELECT id FROM picked))
        RETURNING j.id, j.run_id, j.example_id, j.judge, j.attempts
    )
    SELECT c.id, c.run_id, c.example_id, c.judge, c.attempts, e.external_id, e.payload
    FROM claimed c
    -- LIMIT 1 keeps this a primary-key lookup per job rather than a scan of all examples.
    CROSS JOIN LATERAL (SELECT x.external_id, x.payload FROM examples x WHERE x.id = c.example_id LIMIT 1) e
$$;

-- Extends the leases p_owner still holds on p_jobs. Returns the jobs it still holds.
CREATE FUNCTION jury_renew_leases(p_owner text, p_lease_seconds double precision, p_jobs bigint[])
RETURNS SETOF bigint
LANGUAGE sql AS $$
    WITH held AS (
        SELECT j.id FROM jobs j
        WHERE j.id = ANY (p_jobs) AND j.state = 'running' AND j.lease_owner = p_owner
        FOR UPDATE SKIP LOCKED
    )
    UPDATE jobs j SET lease_expires_at = now() + make_interval(secs => p_lease_seconds)
    FROM held WHERE j.id = held.id
    RETURNING j.id
$$;

-- Moves the counters of examples whose jobs closed (one entry per closed job: its example;
-- p_failed says whether those jobs failed or voted), marks those that are now ready, and
-- wakes the reducers. Called with the examples already locked.
CREATE FUNCTION jury_settle_examples(p_examples bigint[], p_failed boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    ready int;
BEGIN
    WITH counted AS (
        SELECT c.example_id, count(*)::int AS closed,
               CASE WHEN p_failed THEN count(*)::int ELSE 0 END AS failed
        FROM unnest(p_examples) AS c (example_id)
        GROUP BY c.example_id
    ), updated AS (
        UPDATE examples e
        SET jobs_open = e.jobs_open - c.closed,
            jobs_failed = e.jobs_failed + c.failed,
            state = jury_next_state(e.state, e.jobs_open - c.closed, e.jobs_total, e.jobs_failed + c.failed,
                                    e.votes_needed)
        FROM counted c
        WHERE e.id = c.example_id AND e.id = ANY (p_examples)
        RETURNING e.state
    )
    SELECT count(*) INTO ready FROM updated WHERE updated.state = 'ready';
    IF ready > 0 THEN
        PERFORM pg_notify('jury_ready', '');
    END IF;
END
$$;

-- Records the votes of jobs p_owner still holds, completes those jobs, and marks their
-- examples ready when it was their last open job: one transaction for all of it.
-- A job whose lease was lost (its worker was presumed dead) is left alone and not returned.
CREATE FUNCTION jury_record_votes(
    p_owner text, p_jobs bigint[], p_labels text[], p_rationales text[], p_latency_ms int[],
    p_prompt_tokens int[], p_completion_tokens int[]
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    done_jobs bigint[];
    done_examples bigint[];
BEGIN
    PERFORM jury_lock_examples_of(p_jobs);
    WITH input AS (
        SELECT * FROM unnest(p_jobs, p_labels, p_rationales, p_latency_ms, p_prompt_tokens, p_completion_tokens)
            AS i (job_id, label, rationale, latency_ms, prompt_tokens, completion_tokens)
    ), finished AS (
        UPDATE jobs j
        SET state = 'done', lease_owner = NULL, lease_expires_at = NULL, last_error = NULL, updated_at = now()
        FROM input i
        WHERE j.id = i.job_id AND j.id = ANY (p_jobs) AND j.state = 'running' AND j.lease_owner = p_owner
        RETURNING j.id, j.example_id, j.run_id, j.judge, j.attempts
    ), inserted AS (
        INSERT INTO votes (example_id, judge, run_id, label, rationale, latency_ms, prompt_tokens,
                           completion_tokens, attempts)
        SELECT f.example_id, f.judge, f.run_id, i.label, i.rationale, i.latency_ms, i.prompt_tokens,
               i.completion_tokens, f.attempts
        FROM finished f JOIN input i ON i.job_id = f.id
    )
    SELECT array_agg(f.id), array_agg(f.example_id) INTO done_jobs, done_examples FROM finished f;
    PERFORM jury_settle_examples(done_examples, false);
    RETURN QUERY SELECT unnest(done_jobs);
END
$$;

-- Gives back jobs p_owner holds after a failed call: those with p_final false go back to
-- pending after p_delay_seconds; those with p_final true fail for good, and their examples
-- are marked ready if they can no longer agree. With p_refund the attempt is not counted
-- (the worker stopped, or cannot call that judge). Returns the jobs it still held.
CREATE FUNCTION jury_release_jobs(
    p_owner text, p_jobs bigint[], p_errors text[], p_delay_seconds double precision[], p_final boolean[],
    p_refund boolean[]
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    released_jobs bigint[];
    failed_examples bigint[];
BEGIN
    PERFORM jury_lock_examples_of(p_jobs);
    WITH input AS (
        SELECT * FROM unnest(p_jobs, p_errors, p_delay_seconds, p_final, p_refund)
            AS i (job_id, error, delay, final, refund)
    ), released AS (
        UPDATE jobs j
        SET state = CASE WHEN i.final THEN 'failed' ELSE 'pending' END,
            attempts = CASE WHEN i.refund THEN j.attempts - 1 ELSE j.attempts END,
            run_after = now() + make_interval(secs => i.delay),
            lease_owner = NULL, lease_expires_at = NULL, last_error = i.error, updated_at = now()
        FROM input i
        WHERE j.id = i.job_id AND j.id = ANY (p_jobs) AND j.state = 'running' AND j.lease_owner = p_owner
        RETURNING j.id, j.example_id, i.final
    )
    SELECT array_agg(r.id), array_agg(r.example_id) FILTER (WHERE r.final) INTO released_jobs, failed_examples
    FROM released r;
    PERFORM jury_settle_examples(failed_examples, true);
    RETURN QUERY SELECT unnest(released_jobs);
END
$$;

-- Takes back jobs whose lease expired (their worker died or hung): back to pending, or
-- failed once they have used the run's max_attempts. Any process may call it at any time.
CREATE FUNCTION jury_reap_expired_leases(p_limit int DEFAULT 1000) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    expired bigint[];
    reaped int;
    failed_examples bigint[];
BEGIN
    SELECT array_agg(x.id) INTO expired FROM (
        SELECT j.id FROM jobs j WHERE j.state = 'running' AND j.lease_expires_at < now()
        ORDER BY j.lease_expires_at LIMIT p_limit
    ) x;
    IF expired IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM jury_lock_examples_of(expired);
    WITH locked AS (
        SELECT j.id, j.attempts >= coalesce((r.config ->> 'max_attempts')::int, 5) AS final
        FROM jobs j JOIN runs r ON r.id = j.run_id
        WHERE j.id = ANY (expired) AND j.state = 'running' AND j.lease_expires_at < now()
        FOR UPDATE OF j SKIP LOCKED
    ), reaped_jobs AS (
        UPDATE jobs j
        SET state = CASE WHEN l.final THEN 'failed' ELSE 'pending' END,
            run_after = now(), lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
            last_error = 'lease expired: the worker holding the job stopped renewing it'
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

-- Puts the failed jobs of a run (optionally one batch, one judge) back to pending with
-- fresh attempts. Their examples vote again: a verdict they already had is withdrawn and
-- decided anew once the retried jobs finish. Returns the number of jobs retried.
CREATE FUNCTION jury_retry_failed(p_run bigint, p_batch text, p_judge text) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    failed bigint[];
    retried int;
BEGIN
    SELECT array_agg(j.id) INTO failed
    FROM jobs j JOIN examples x ON x.id = j.example_id
    WHERE j.run_id = p_run AND j.state = 'failed'
      AND (p_batch IS NULL OR x.batch = p_batch) AND (p_judge IS NULL OR j.judge = p_judge);
    IF failed IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM jury_lock_examples_of(failed);
    WITH retried_jobs AS (
        UPDATE jobs j
        SET state = 'pending', attempts = 0, run_after = now(), last_error = NULL, updated_at = now()
        WHERE j.id = ANY (failed) AND j.state = 'failed'
        RETURNING j.example_id
    ), counted AS (
        SELECT r.example_id, count(*)::int AS n FROM retried_jobs r GROUP BY r.example_id
    ), withdrawn AS (
        DELETE FROM verdicts v USING counted c WHERE v.example_id = c.example_id
    ), reopened AS (
        UPDATE examples e
        SET jobs_open = e.jobs_open + c.n, jobs_failed = e.jobs_failed - c.n, state = 'voting'
        FROM counted c WHERE e.id = c.example_id
    )
    SELECT coalesce(sum(c.n), 0) INTO retried FROM counted c;
    PERFORM pg_notify('jury_jobs', '');
    RETURN retried;
END
$$;
