-- Provider batches: a batch-mode judge's jobs go to the provider's batch API (OpenAI's Batch
-- API) in batches of up to its max_requests, answered within the completion window at the
-- batch price. (Not the corpus's batches, which are examples.batch, a label given at enqueue.)
--
-- A batch is the unit that survives: its jobs are leased to it ('batch:' || id as the owner)
-- for its completion window, not to a worker. Each step (submit, poll, collect) is short and
-- taken by whichever worker finds the batch due, under a step lease (step_owner,
-- step_expires_at) that holds while the worker's own lease does, so a worker that dies in any
-- step leaves the batch to the next one within its lease:
--   building   its jobs are claimed; the requests are being uploaded and the batch created.
--              Taken up again after a crash, the provider is first searched for a batch that
--              carries its token in its metadata: a batch is never submitted twice unnoticed;
--   submitted  the provider has it (provider_id); polled every poll interval;
--   ended      the provider finished it (completed, expired, cancelled or failed); its results
--              are being collected;
--   collected, expired, cancelled, failed: every job of the batch has an outcome.
-- Answers are recorded through jury_record_votes and jury_release_jobs, fenced by the claims
-- the batch holds: a collection done twice, or a duplicate batch's answers, record each vote once.
-- The jobs the provider never answered are given back without using an attempt.

CREATE TABLE batches (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id           bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    judge            text NOT NULL,
    -- Put in the provider's metadata, and in no other batch anywhere: finds a batch whose
    -- submission was never recorded.
    token            uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    state            text NOT NULL DEFAULT 'building'
                     CHECK (state IN ('building', 'submitted', 'ended', 'collected', 'expired', 'cancelled', 'failed')),
    -- The provider's ids and its last word on the batch's status.
    provider_id      text,
    provider_state   text,
    input_file_id    text,
    output_file_id   text,
    error_file_id    text,
    -- The jobs and their claims, as the batch claimed them: its requests' custom ids. Those its
    -- run's budget could not cover go back before it is sent.
    job_ids          bigint[] NOT NULL DEFAULT '{}',
    claims           int[] NOT NULL DEFAULT '{}',
    -- Each request's prompt hash, in the same order, set when the batch is submitted: every
    -- vote keeps the hash of the prompt it saw, and the collector need not render it again.
    prompt_hashes    text[] NOT NULL DEFAULT '{}',
    -- The jobs claimed; once submitted, the requests sent.
    requests         int NOT NULL DEFAULT 0,
    -- Requests that became votes, and those that did not (retried or failed per the call policy).
    succeeded        int NOT NULL DEFAULT 0,
    failed           int NOT NULL DEFAULT 0,
    -- The estimated cost of the requests not yet answered, counted against the run's budget_usd
    -- from submission (jury_run_within_budget): a run cannot overshoot its budget by whole
    -- batches. Settled as results land, and 0 once the batch is closed.
    reserved_usd     double precision NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    submitted_at     timestamptz,
    polled_at        timestamptz,
    ended_at         timestamptz,
    collected_at     timestamptz,
    next_poll_at     timestamptz NOT NULL DEFAULT now(),
    -- When the jobs' lease lapses: the reaper takes back what the batch still holds then.
    expires_at       timestamptz NOT NULL,
    step_owner       text,
    step_expires_at  timestamptz,
    -- Steps taken: a batch building at its second step or later was left unfinished, and the
    -- provider is searched for it before it is sent.
    steps            int NOT NULL DEFAULT 0,
    -- `jury batch cancel`: the next worker to take the batch cancels it at the provider.
    cancel_requested boolean NOT NULL DEFAULT false,
    last_error       text
);

-- What a worker looks for: batches with a step due.
CREATE INDEX batches_open ON batches (next_poll_at) WHERE state IN ('building', 'submitted', 'ended');
CREATE INDEX batches_run ON batches (run_id, judge, created_at);

-- Opens a batch of the judge when one is due: when p_max jobs are pending, or when the oldest
-- has waited p_gather_seconds. Claims up to p_max of them (jury_claim_jobs: active runs within
-- budget, closed breakers, examples still voting) leased to the batch for p_window_seconds. Its
-- first step (submitting it) is due at once, for any worker. Returns the batch, or NULL when
-- none is due.
CREATE OR REPLACE FUNCTION jury_open_batch(
    p_run bigint, p_judge text, p_max int, p_gather_seconds double precision, p_window_seconds double precision
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_oldest timestamptz;
    v_due int;
    v_batch bigint;
    v_jobs bigint[];
    v_claims int[];
BEGIN
    SELECT min(j.run_after), count(*) INTO v_oldest, v_due FROM (
        SELECT j.run_after FROM jobs j
        WHERE j.state = 'pending' AND j.run_id = p_run AND j.judge = p_judge AND j.run_after <= now()
        ORDER BY j.run_after, j.id LIMIT p_max
    ) j;
    IF v_due = 0 OR (v_due < p_max AND v_oldest > now() - make_interval(secs => p_gather_seconds)) THEN
        RETURN NULL;
    END IF;
    INSERT INTO batches (run_id, judge, expires_at)
    VALUES (p_run, p_judge, now() + make_interval(secs => p_window_seconds))
    RETURNING id INTO v_batch;
    SELECT array_agg(c.job_id ORDER BY c.job_id), array_agg(c.claim ORDER BY c.job_id) INTO v_jobs, v_claims
    FROM jury_claim_jobs('batch:' || v_batch, p_window_seconds, ARRAY[p_run], ARRAY[p_judge], ARRAY[p_max]) c;
    IF v_jobs IS NULL THEN
        DELETE FROM batches WHERE id = v_batch;
        RETURN NULL;
    END IF;
    UPDATE batches SET job_ids = v_jobs, claims = v_claims, requests = cardinality(v_jobs) WHERE id = v_batch;
    RETURN v_batch;
END
$$;

-- Gives p_owner the next step of one batch of these runs and judges that is due: one whose
-- building was left unfinished, one whose poll is due, or one ended and not collected; none
-- whose step another worker holds. A step is held while its owner's lease holds (a worker
-- killed in a step frees it within its lease), and at most p_step_seconds (a hung step).
-- Returns nothing when no step is due.
CREATE OR REPLACE FUNCTION jury_take_batch_step(
    p_owner text, p_step_seconds double precision, p_runs bigint[], p_judges text[]
) RETURNS TABLE (id bigint, run_id bigint, judge text, state text, token uuid, provider_id text,
                 provider_state text, output_file_id text, error_file_id text, created_at timestamptz,
                 cancel_requested boolean, steps int)
LANGUAGE sql AS $$
    UPDATE batches b
    SET step_owner = p_owner, step_expires_at = now() + make_interval(secs => p_step_seconds), steps = b.steps + 1
    WHERE b.id = (
        SELECT d.id FROM batches d
        JOIN unnest(p_runs, p_judges) AS w (run_id, judge) ON w.run_id = d.run_id AND w.judge = d.judge
        WHERE d.state IN ('building', 'submitted', 'ended') AND d.next_poll_at <= now()
          AND (d.step_expires_at IS NULL OR d.step_expires_at < now()
               OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = d.step_owner AND w.lease_expires_at >= now()))
        ORDER BY d.next_poll_at
        LIMIT 1
        FOR UPDATE OF d SKIP LOCKED
    )
    RETURNING b.id, b.run_id, b.judge, b.state, b.token, b.provider_id, b.provider_state, b.output_file_id,
              b.error_file_id, b.created_at, b.cancel_requested, b.steps
$$;

-- The batch's jobs its claims still hold (running, under the claim the batch made), with what
-- building their requests and deciding their outcomes needs; their payloads only when asked.
-- Jobs are found by `= ANY (array)` and their state compared to (SELECT 'running'): the planner
-- then walks the primary key for a batch's 50,000 jobs, instead of every job that ever ran.
CREATE OR REPLACE FUNCTION jury_batch_jobs(p_batch bigint, p_payloads boolean)
RETURNS TABLE (job_id bigint, run_id bigint, example_id bigint, judge text, attempts int, claim int,
               transient_failures int, retrying_seconds double precision, external_id text, payload jsonb,
               prompt_hash text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_jobs bigint[];
    v_claims int[];
    v_hashes text[];
BEGIN
    SELECT b.job_ids, b.claims, b.prompt_hashes INTO v_jobs, v_claims, v_hashes FROM batches b WHERE b.id = p_batch;
    RETURN QUERY
    SELECT j.id, j.run_id, j.example_id, j.judge, j.attempts, j.claims, j.transient_failures,
           extract(epoch FROM now() - j.retrying_since)::float8, x.external_id,
           CASE WHEN p_payloads THEN x.payload ELSE 'null'::jsonb END, c.prompt_hash
    FROM unnest(v_jobs, v_claims, v_hashes) AS c (job_id, claim, prompt_hash)
    JOIN jobs j ON j.id = c.job_id AND j.claims = c.claim
    JOIN examples x ON x.id = j.example_id
    WHERE j.id = ANY (v_jobs) AND j.state = (SELECT 'running'::text)
    ORDER BY j.id;
END
$$;

-- Moves a batch p_owner's step holds on: to submitted (p_provider_id set, with the jobs sent
-- under their claims and each one's prompt hash, which replace the jobs it claimed), to ended (p_ended), or
-- records a poll; the step is let go unless the batch ended (its collector carries on).
-- p_next_poll_seconds is when it is next due. Returns false when the step no longer holds
-- (another worker took the batch over): the caller then changes nothing at the provider.
CREATE OR REPLACE FUNCTION jury_batch_advanced(
    p_batch bigint, p_owner text, p_provider_id text, p_input_file_id text, p_sent_jobs bigint[], p_sent_claims int[],
    p_prompt_hashes text[],
    p_provider_state text, p_ended boolean, p_output_file_id text, p_error_file_id text,
    p_next_poll_seconds double precision, p_error text
) RETURNS boolean
LANGUAGE sql AS $$
    WITH advanced AS (
        UPDATE batches b
        SET state = CASE WHEN p_ended THEN 'ended' WHEN p_provider_id IS NOT NULL THEN 'submitted' ELSE b.state END,
            provider_id = coalesce(p_provider_id, b.provider_id),
            input_file_id = coalesce(p_input_file_id, b.input_file_id),
            -- Once sent, the batch is the requests it sent.
            job_ids = coalesce(p_sent_jobs, b.job_ids),
            claims = coalesce(p_sent_claims, b.claims),
            prompt_hashes = coalesce(p_prompt_hashes, b.prompt_hashes),
            requests = coalesce(cardinality(p_sent_jobs), b.requests),
            provider_state = coalesce(p_provider_state, b.provider_state),
            output_file_id = coalesce(p_output_file_id, b.output_file_id),
            error_file_id = coalesce(p_error_file_id, b.error_file_id),
            submitted_at = CASE WHEN p_provider_id IS NOT NULL AND b.submitted_at IS NULL THEN now()
                                ELSE b.submitted_at END,
            polled_at = CASE WHEN b.provider_id IS NOT NULL THEN now() ELSE b.polled_at END,
            ended_at = CASE WHEN p_ended THEN now() ELSE b.ended_at END,
            next_poll_at = now() + make_interval(secs => p_next_poll_seconds),
            step_owner = CASE WHEN p_ended THEN b.step_owner END,
            step_expires_at = CASE WHEN p_ended THEN b.step_expires_at END,
            last_error = coalesce(p_error, b.last_error)
        WHERE b.id = p_batch AND b.step_owner = p_owner AND b.state IN ('building', 'submitted', 'ended')
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM advanced)
$$;

-- Adds what a chunk of results recorded to the batch's counts, settles their share of its
-- reservation, and renews p_owner's step for p_step_seconds; p_final_state closes the batch
-- (collected, expired, cancelled or failed). Returns false when the step no longer holds.
CREATE OR REPLACE FUNCTION jury_batch_collected(
    p_batch bigint, p_owner text, p_succeeded int, p_failed int, p_step_seconds double precision,
    p_final_state text
) RETURNS boolean
LANGUAGE sql AS $$
    WITH collected AS (
        UPDATE batches b
        SET succeeded = b.succeeded + p_succeeded, failed = b.failed + p_failed,
            reserved_usd = CASE WHEN p_final_state IS NOT NULL THEN 0
                                ELSE greatest(0, b.reserved_usd - b.reserved_usd * (p_succeeded + p_failed)
                                                 / greatest(b.requests - b.succeeded - b.failed, 1)) END,
            state = coalesce(p_final_state, b.state),
            collected_at = CASE WHEN p_final_state IS NOT NULL THEN now() END,
            step_owner = CASE WHEN p_final_state IS NULL THEN b.step_owner END,
            step_expires_at = CASE WHEN p_final_state IS NULL THEN now() + make_interval(secs => p_step_seconds) END
        WHERE b.id = p_batch AND b.step_owner = p_owner AND b.state IN ('building', 'ended')
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM collected)
$$;

-- What the run may still spend before a batch of it is submitted (NULL: no budget): its budget
-- less what its votes cost and what its open batches reserved.
CREATE OR REPLACE FUNCTION jury_budget_left(p_run bigint) RETURNS double precision
LANGUAGE sql STABLE AS $$
    SELECT (r.config ->> 'budget_usd')::double precision
           - coalesce((SELECT sum(s.cost_usd) FROM judge_spend s WHERE s.run_id = r.id), 0)
           - coalesce((SELECT sum(b.reserved_usd) FROM batches b
                       WHERE b.run_id = r.id AND b.state IN ('building', 'submitted', 'ended')), 0)
    FROM runs r WHERE r.id = p_run
$$;

-- Reserves p_usd of the run's budget for the batch p_owner's step holds, if the budget has
-- that much left. Two batches reserving at once take the run's row in turn, so together they
-- never reserve more than is left. Returns whether it reserved.
CREATE OR REPLACE FUNCTION jury_reserve_batch_budget(p_batch bigint, p_owner text, p_usd double precision)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_run bigint;
    v_held double precision;
BEGIN
    SELECT b.run_id, b.reserved_usd INTO v_run, v_held
    FROM batches b WHERE b.id = p_batch AND b.step_owner = p_owner AND b.state = 'building';
    IF v_run IS NULL THEN
        RETURN false;
    END IF;
    PERFORM 1 FROM runs r WHERE r.id = v_run FOR NO KEY UPDATE;
    -- What this batch reserved at an earlier try is its own to use again.
    IF coalesce(jury_budget_left(v_run) + v_held >= p_usd, true) THEN
        UPDATE batches SET reserved_usd = p_usd WHERE id = p_batch;
        RETURN true;
    END IF;
    RETURN false;
END
$$;

-- Within budget: what the votes cost and what the open batches reserved stay below budget_usd.
-- Every claim asks: a run without a budget reads nothing more.
CREATE OR REPLACE FUNCTION jury_run_within_budget(p_run bigint) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF (SELECT r.config ->> 'budget_usd' FROM runs r WHERE r.id = p_run) IS NULL THEN
        RETURN true;
    END IF;
    RETURN jury_budget_left(p_run) > 0;
END
$$;

-- The runs a worker serves batches of: the active ones, and those with batches still open (a
-- paused or cancelled run's batches are still polled and collected, for the answers paid for).
CREATE OR REPLACE FUNCTION jury_runs_with_batch_work(p_name text)
RETURNS TABLE (id bigint, name text, config jsonb, state text)
LANGUAGE sql STABLE AS $$
    SELECT r.id, r.name, r.config, r.state FROM runs r
    WHERE (p_name IS NULL OR r.name = p_name)
      AND (r.state = 'active'
           OR EXISTS (SELECT 1 FROM batches b WHERE b.run_id = r.id AND b.state IN ('building', 'submitted', 'ended')))
    ORDER BY r.id
$$;

-- Lets go of a step that failed: the batch is due again after p_retry_seconds, for any worker.
CREATE OR REPLACE FUNCTION jury_batch_step_failed(p_batch bigint, p_owner text, p_retry_seconds double precision,
                                                  p_error text)
RETURNS void
LANGUAGE sql AS $$
    UPDATE batches
    SET step_owner = NULL, step_expires_at = NULL, next_poll_at = now() + make_interval(secs => p_retry_seconds),
        last_error = p_error
    WHERE id = p_batch AND step_owner = p_owner
$$;

-- `jury batch cancel`: asks the workers to cancel an open batch at the provider (they hold the
-- keys); it is due at once. What it answered before it stopped is still recorded. Returns
-- false for a batch that is closed or does not exist.
CREATE OR REPLACE FUNCTION jury_request_batch_cancel(p_batch bigint) RETURNS boolean
LANGUAGE sql AS $$
    WITH requested AS (
        UPDATE batches SET cancel_requested = true, next_poll_at = now()
        WHERE id = p_batch AND state IN ('building', 'submitted', 'ended')
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM requested)
$$;

-- Each provider batch: its state, its requests done and failed, its age and when its jobs' lease
-- lapses.
CREATE OR REPLACE VIEW jury_batches AS
SELECT b.id, r.name AS run, b.judge, b.state, b.provider_state, b.provider_id, b.requests, b.succeeded, b.failed,
       b.reserved_usd, b.created_at, b.submitted_at, b.ended_at, b.collected_at,
       now() - b.created_at AS age, b.expires_at, b.cancel_requested, b.last_error
FROM batches b JOIN runs r ON r.id = b.run_id;

-- Per run and judge: batches by state, the requests of those still open, what they reserved,
-- and how long the oldest submitted one has been at the provider. Read by `jury status` and at
-- each scrape of /metrics: batches are few (one per thousands of jobs).
CREATE OR REPLACE VIEW jury_batch_summary AS
SELECT r.name AS run, b.judge,
       count(*) FILTER (WHERE b.state = 'building')::int AS building,
       count(*) FILTER (WHERE b.state = 'submitted')::int AS submitted,
       count(*) FILTER (WHERE b.state = 'ended')::int AS ended,
       count(*) FILTER (WHERE b.state = 'collected')::int AS collected,
       count(*) FILTER (WHERE b.state = 'expired')::int AS expired,
       count(*) FILTER (WHERE b.state = 'cancelled')::int AS cancelled,
       count(*) FILTER (WHERE b.state = 'failed')::int AS failed,
       coalesce(sum(b.requests - b.succeeded - b.failed)
                FILTER (WHERE b.state IN ('building', 'submitted', 'ended')), 0)::bigint AS requests_open,
       coalesce(sum(b.reserved_usd), 0)::float8 AS reserved_usd,
       coalesce(extract(epoch FROM now() - min(b.submitted_at) FILTER (WHERE b.state = 'submitted')), 0)::float8
           AS oldest_submitted_seconds
FROM batches b JOIN runs r ON r.id = b.run_id
GROUP BY r.name, b.judge;

INSERT INTO jury_privileges (role, kind, name)
SELECT 'jury_worker', 'function', unnest(ARRAY[
    'jury_open_batch', 'jury_take_batch_step', 'jury_batch_jobs', 'jury_batch_advanced', 'jury_batch_collected',
    'jury_runs_with_batch_work', 'jury_budget_left', 'jury_reserve_batch_budget', 'jury_batch_step_failed'])
UNION ALL
SELECT 'jury_worker', 'table', 'batches'
ON CONFLICT DO NOTHING;
