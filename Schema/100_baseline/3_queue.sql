-- The queue's transitions: enqueue, claim, record, release, reap, return, retry, settle, and
-- the deletes that replace the foreign keys. Every process changes the queue through these
-- functions only, each one statement for its caller and one transaction.
--
-- Invariants:
-- - Lock order: a run's row (jury_lock_run_for_work, when work is added), then examples in id
--   order (jury_lock_examples_of, first in every transition that closes jobs), then their jobs.
--   Claims lock jobs with SKIP LOCKED and never wait. So no two transitions deadlock.
-- - A claim numbers the job's claim (jobs.claims); only the claim that holds a job can record,
--   release or return it. An outcome that comes late, after a reap or a second claim, touches
--   nothing.
-- - An example's counts (jobs_open, jobs_failed, jobs_waiting, jobs_cancelled) move in the same
--   statement as the jobs they count, through jury_settle_examples, under the example's lock.
-- - Lookups are by `= ANY (array)` throughout: the planner walks the primary keys then, instead
--   of hashing whole tables for row sets it cannot estimate.

-- The example's state once its counters have moved: ready for the reducer when no job is
-- open, or when so many have failed that the rule can no longer agree.
CREATE OR REPLACE FUNCTION jury_next_state(
    p_state text, p_jobs_open int, p_jobs_total int, p_jobs_failed int, p_votes_needed int
) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_state = 'voting' AND (p_jobs_open = 0 OR p_jobs_total - p_jobs_failed < p_votes_needed)
        THEN 'ready' ELSE p_state END
$$;

-- Locks the examples of these jobs in id order. Every transition that closes jobs calls it
-- first, so two transactions never wait on each other's examples in a cycle. Its keys make the
-- generic plan the right one: it is kept, and never a scan of a table that was small when planned.
CREATE OR REPLACE FUNCTION jury_lock_examples_of(p_jobs bigint[]) RETURNS void
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
BEGIN
    PERFORM 1 FROM examples e
    WHERE e.id = ANY (ARRAY(SELECT j.example_id FROM jobs j WHERE j.id = ANY (p_jobs)))
    ORDER BY e.id FOR UPDATE;
END
$$;

-- Notifies a channel at most once every 50 ms. A notifying transaction holds a lock every
-- database of the server shares from just before its commit until the commit is on disk, and
-- each notification wakes every listener; the hot path (records) notifies through this. A
-- transaction that finds the channel's row taken leaves the notification to its holder (SKIP
-- LOCKED: nobody waits), so a notification may stand for work committed up to 50 ms after it:
-- its listeners look again 100 ms later. The rarer paths (enqueue, retry, reaping, runs and
-- breakers) notify every time.
CREATE OR REPLACE FUNCTION jury_notify_throttled(p_channel text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM notify_clock c
    WHERE c.channel = p_channel AND c.sent_at < clock_timestamp() - interval '50 milliseconds'
    FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
        UPDATE notify_clock SET sent_at = clock_timestamp() WHERE channel = p_channel;
        PERFORM pg_notify(p_channel, '');
    END IF;
END
$$;

-- Adding work to a run: takes its row FOR SHARE, so that enqueue chunks load side by side,
-- and reopens a done run (then exclusively, from the start). jury_finish_runs takes the row
-- FOR NO KEY UPDATE and skips a run any adder holds: a run never ends under work being added.
-- Should two adders reopen a run that ended between their look and their lock, they deadlock;
-- the server stops one and the loader tries that chunk again. A run that is gone is an error.
CREATE OR REPLACE FUNCTION jury_lock_run_for_work(p_run bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM runs WHERE id = p_run AND state = 'done') THEN
        PERFORM 1 FROM runs WHERE id = p_run FOR NO KEY UPDATE;
    ELSE
        PERFORM 1 FROM runs WHERE id = p_run FOR SHARE;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % does not exist (it was deleted)', p_run USING ERRCODE = 'foreign_key_violation';
    END IF;
END;
$$;

-- Moves the staged lines (temporary table jury_incoming_lines (line int, doc jsonb)) into the
-- run, under jury_lock_run_for_work: one example per line whose id the run lacks, one job per
-- example and judge (waiting when the judge's order is above the lowest), and counts the jobs
-- it inserted itself, a row of run_counts per judge and state. Reports what it inserted and
-- the ids already in the run with a different line (their count and the first five). Sorting a
-- 50,000-line chunk in memory needs the larger work_mem.
CREATE OR REPLACE FUNCTION jury_insert_lines(p_run bigint, p_batch text, p_judges text[], p_orders int[], p_votes_needed int)
RETURNS TABLE (inserted_examples bigint, inserted_jobs bigint, changed_examples bigint, changed_sample text)
LANGUAGE plpgsql SET work_mem = '64MB' AS $$
DECLARE
    v_first int := (SELECT min(o) FROM unnest(p_orders) AS o);
    v_waiting int := (SELECT count(*) FROM unnest(p_orders) AS o WHERE o > v_first);
    v_staged bigint := (SELECT count(*) FROM jury_incoming_lines);
BEGIN
    WITH added AS (
        INSERT INTO examples (run_id, batch, external_id, payload, human_label, source_label,
                              jobs_total, jobs_open, jobs_waiting, votes_needed)
        SELECT p_run, p_batch, l.doc ->> 'id', l.doc - ARRAY['id', 'human_label', 'source_label'],
               l.doc ->> 'human_label', l.doc ->> 'source_label',
               cardinality(p_judges), cardinality(p_judges), v_waiting, p_votes_needed
        FROM jury_incoming_lines l ORDER BY l.line
        ON CONFLICT (run_id, external_id) DO NOTHING
        RETURNING id
    ), added_jobs AS (
        INSERT INTO jobs (run_id, example_id, judge, judge_order, state)
        SELECT p_run, a.id, j.judge, j.judge_order, CASE WHEN j.judge_order > v_first THEN 'waiting' ELSE 'pending' END
        FROM added a CROSS JOIN unnest(p_judges, p_orders) AS j (judge, judge_order)
    )
    SELECT count(*) INTO inserted_examples FROM added;
    inserted_jobs := inserted_examples * cardinality(p_judges);

    IF inserted_examples > 0 THEN
        INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
        SELECT p_run, j.judge, CASE WHEN j.judge_order > v_first THEN 'jobs.waiting' ELSE 'jobs.pending' END,
               pg_backend_pid(), inserted_examples
        FROM unnest(p_judges, p_orders) AS j (judge, judge_order)
        ORDER BY 1, 2, 3
        ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;
    END IF;

    changed_examples := 0;
    changed_sample := '[]';
    IF inserted_examples < v_staged THEN
        SELECT count(*), coalesce(to_jsonb((array_agg(e.external_id ORDER BY l.line))[1:5]), '[]')::text
        INTO changed_examples, changed_sample
        FROM jury_incoming_lines l
        JOIN examples e ON e.run_id = p_run AND e.external_id = l.doc ->> 'id'
        WHERE e.payload <> l.doc - ARRAY['id', 'human_label', 'source_label'] OR e.batch <> p_batch
           OR e.human_label IS DISTINCT FROM l.doc ->> 'human_label'
           OR e.source_label IS DISTINCT FROM l.doc ->> 'source_label';
    END IF;

    IF inserted_jobs > 0 THEN
        PERFORM pg_notify('jury_jobs', '');
    END IF;
    RETURN NEXT;
END;
$$;

-- Enqueue's entry: locks the run for work (reopening it if done), then inserts the lines.
CREATE OR REPLACE FUNCTION jury_enqueue_lines(p_run bigint, p_batch text, p_judges text[], p_orders int[], p_votes_needed int)
RETURNS TABLE (inserted_examples bigint, inserted_jobs bigint, changed_examples bigint, changed_sample text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM jury_lock_run_for_work(p_run);
    SELECT i.inserted_examples, i.inserted_jobs, i.changed_examples, i.changed_sample
    INTO inserted_examples, inserted_jobs, changed_examples, changed_sample
    FROM jury_insert_lines(p_run, p_batch, p_judges, p_orders, p_votes_needed) i;
    IF inserted_examples > 0 THEN
        PERFORM jury_reopen_run(p_run);
    END IF;
    RETURN NEXT;
END;
$$;

-- Claims up to p_limits[i] pending jobs of judge p_judges[i] in run p_runs[i] for p_owner,
-- leased for p_lease_seconds, each under a new claim number. Only active runs within budget,
-- judges whose breaker is closed, and examples still voting. Skips rows other workers hold, so
-- claims never wait. Reads each claimed job's example once, and finds the jobs it locked again
-- by their row address (a locked row cannot move within the statement). plpgsql, so that its
-- plan is kept per connection: planning took a fifth of a claim of 128 jobs.
CREATE OR REPLACE FUNCTION jury_claim_jobs(
    p_owner text, p_lease_seconds double precision, p_runs bigint[], p_judges text[], p_limits int[]
) RETURNS TABLE (job_id bigint, run_id bigint, example_id bigint, judge text, attempts int, claim int,
                 transient_failures int, retrying_since timestamptz, external_id text, payload jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH open_runs AS MATERIALIZED (
        SELECT r.id FROM runs r
        WHERE r.id = ANY (p_runs) AND r.state = 'active' AND jury_run_within_budget(r.id)
    ), wanted AS (
        SELECT w.* FROM unnest(p_runs, p_judges, p_limits) AS w (run_id, judge, wanted)
        WHERE w.run_id IN (SELECT o.id FROM open_runs o)
          AND NOT EXISTS (SELECT 1 FROM judge_breakers b WHERE b.run_id = w.run_id AND b.judge = w.judge)
    ), picked AS (
        SELECT c.id, c.row_address, c.external_id, c.payload
        FROM wanted w
        CROSS JOIN LATERAL (
            SELECT j.id, j.ctid AS row_address, x.external_id, x.payload
            FROM jobs j
            JOIN examples x ON x.id = j.example_id AND x.state = 'voting'
            WHERE j.state = 'pending' AND j.run_id = w.run_id AND j.judge = w.judge AND j.run_after <= now()
            ORDER BY j.run_after, j.id
            LIMIT w.wanted
            FOR UPDATE OF j SKIP LOCKED
        ) c
    ), claimed AS (
        UPDATE jobs j
        SET state = 'running', attempts = j.attempts + 1, claims = j.claims + 1, lease_owner = p_owner,
            lease_expires_at = now() + make_interval(secs => p_lease_seconds), updated_at = now()
        WHERE j.ctid = ANY (ARRAY(SELECT p.row_address FROM picked p))
        RETURNING j.id, j.run_id, j.example_id, j.judge, j.attempts, j.claims, j.transient_failures,
                  j.retrying_since
    )
    SELECT c.id, c.run_id, c.example_id, c.judge, c.attempts, c.claims, c.transient_failures, c.retrying_since,
           p.external_id, p.payload
    FROM claimed c
    JOIN picked p ON p.id = c.id;
END
$$;

-- Moves the counters of examples whose jobs closed (one entry per closed job: its example;
-- p_failed says whether those jobs failed or voted), marks those that are now ready, and wakes
-- the reducers. Called with the examples already locked. Then:
-- - early decision: an example (without a human label, whose run's rule decides early) whose
--   votes already rule agreement out is ready at once, and its jobs not yet claimed are
--   cancelled (a job under way finishes; its vote is kept);
-- - an example that failed jobs leave short of a verdict gives up its other jobs too (cancelled,
--   counted in jobs_cancelled); `jury retry` gives them back. An example with a human label is
--   never short: it calibrates the panel, so it waits for every judge;
-- - ordered judges: an example whose open jobs all wait has its next order's jobs released
--   (skipped when no example can have any due).
CREATE OR REPLACE FUNCTION jury_settle_examples(p_examples bigint[], p_failed boolean) RETURNS void
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_ready int;
    v_hopeless bigint[];
    v_short bigint[];
    v_cancel bigint[];
    v_released int := 0;
    v_maybe_due boolean;
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
            -- An example with a human label calibrates the panel: it waits for every job to close.
            state = jury_next_state(e.state, e.jobs_open - c.closed, e.jobs_total,
                                    CASE WHEN e.human_label IS NULL THEN e.jobs_failed + c.failed ELSE 0 END,
                                    e.votes_needed)
        FROM counted c
        WHERE e.id = c.example_id AND e.id = ANY (p_examples)
        RETURNING e.id, e.state, e.jobs_open, e.jobs_waiting
    )
    SELECT count(*) FILTER (WHERE u.state = 'ready'),
           array_agg(u.id) FILTER (WHERE u.state = 'ready' AND u.jobs_open > 0),
           coalesce(bool_or(u.state = 'voting' AND u.jobs_waiting > 0 AND u.jobs_open = u.jobs_waiting), false)
    INTO v_ready, v_short, v_maybe_due
    FROM updated u;

    SELECT array_agg(e.id) INTO v_hopeless
    FROM examples e
    JOIN runs r ON r.id = e.run_id
    CROSS JOIN LATERAL (
        SELECT count(DISTINCT v.label) AS labels, max(v.n) AS top
        FROM (SELECT x.label, count(*) AS n FROM votes x WHERE x.example_id = e.id GROUP BY x.label) v
    ) t
    WHERE e.id = ANY (p_examples) AND e.state = 'voting' AND e.jobs_open > 0 AND e.human_label IS NULL
      AND coalesce((r.config #>> '{consensus,early_decision}')::boolean, true)
      AND CASE r.config #>> '{consensus,rule}'
              WHEN 'unanimous' THEN t.labels > 1
              WHEN 'quorum' THEN t.top + e.jobs_open < (r.config #>> '{consensus,quorum}')::int
              ELSE false END;

    -- Hopeless examples become ready now; short ones are ready already. Both lose the jobs
    -- nobody has called yet. Running jobs finish, or are cancelled when they are given back.
    v_cancel := v_hopeless || v_short;
    IF v_cancel IS NOT NULL THEN
        WITH cancelled AS (
            UPDATE jobs j SET state = 'cancelled', updated_at = now()
            WHERE j.example_id = ANY (v_cancel) AND j.state IN ('pending', 'waiting')
            RETURNING j.example_id
        ), counted AS (
            SELECT c.example_id, count(*)::int AS n FROM cancelled c GROUP BY c.example_id
        )
        UPDATE examples e
        SET jobs_open = e.jobs_open - coalesce(c.n, 0), jobs_cancelled = e.jobs_cancelled + coalesce(c.n, 0),
            jobs_waiting = 0, state = 'ready'
        FROM unnest(v_cancel) AS h (id) LEFT JOIN counted c ON c.example_id = h.id
        WHERE e.id = h.id AND e.id = ANY (v_cancel) AND (c.n IS NOT NULL OR e.state = 'voting');
        v_ready := v_ready + coalesce(cardinality(v_hopeless), 0);
    END IF;

    -- The waiting jobs of the next order, on examples where nothing else is open. Only runs with
    -- judge orders have waiting jobs: elsewhere the statement, and the count triggers its two
    -- empty updates would fire, are skipped.
    IF v_maybe_due THEN
        WITH due AS (
            SELECT e.id FROM examples e
            WHERE e.id = ANY (p_examples) AND e.state = 'voting' AND e.jobs_waiting > 0 AND e.jobs_open = e.jobs_waiting
        ), next_order AS (
            SELECT j.example_id, min(j.judge_order) AS judge_order
            FROM jobs j WHERE j.example_id = ANY (ARRAY(SELECT id FROM due)) AND j.state = 'waiting'
            GROUP BY j.example_id
        ), released AS (
            UPDATE jobs j SET state = 'pending', run_after = now(), updated_at = now()
            FROM next_order n
            WHERE j.example_id = n.example_id AND j.judge_order = n.judge_order AND j.state = 'waiting'
              AND j.example_id = ANY (ARRAY(SELECT id FROM due))
            RETURNING j.example_id
        ), counted AS (
            SELECT r.example_id, count(*)::int AS n FROM released r GROUP BY r.example_id
        ), moved AS (
            UPDATE examples e SET jobs_waiting = e.jobs_waiting - c.n FROM counted c WHERE e.id = c.example_id
            RETURNING 1
        )
        SELECT coalesce(sum(c.n), 0) INTO v_released FROM counted c;
    END IF;

    IF v_ready > 0 THEN
        PERFORM jury_notify_throttled('jury_ready');
    END IF;
    IF v_released > 0 THEN
        PERFORM jury_notify_throttled('jury_jobs');
    END IF;
END
$$;

-- Records the votes of the claims (p_jobs[i], p_claims[i]) still running: each vote replaces
-- its job (the job's row is deleted; the vote keeps the example, judge, run, attempts and
-- claims), the judge's spend grows in the recording backend's own row of judge_spend, and the
-- examples are settled: one transaction for all of it. A claim that no longer holds (its lease
-- was taken back, the job claimed again) is left alone and not returned. Returns the jobs
-- recorded.
CREATE OR REPLACE FUNCTION jury_record_votes(
    p_owner text, p_jobs bigint[], p_claims int[], p_labels text[], p_rationales text[], p_latency_ms int[],
    p_prompt_tokens bigint[], p_completion_tokens bigint[], p_cached_tokens bigint[], p_model_versions text[],
    p_prompt_hashes text[], p_costs double precision[], p_cache_write_tokens bigint[], p_thinking_tokens bigint[]
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    done_jobs bigint[];
    done_examples bigint[];
BEGIN
    PERFORM jury_lock_examples_of(p_jobs);
    WITH input AS (
        SELECT * FROM unnest(p_jobs, p_claims, p_labels, p_rationales, p_latency_ms, p_prompt_tokens,
                             p_completion_tokens, p_cached_tokens, p_model_versions, p_prompt_hashes, p_costs,
                             p_cache_write_tokens, p_thinking_tokens)
            AS i (job_id, claim, label, rationale, latency_ms, prompt_tokens, completion_tokens, cached_tokens,
                  model_version, prompt_hash, cost, cache_write_tokens, thinking_tokens)
    ), finished AS (
        -- Only the claim that holds the job may record it: a job given back or taken over since
        -- has another claim number, and a job recorded already is gone.
        DELETE FROM jobs j
        USING input i
        -- (SELECT 'running'), not 'running': compared to a constant, the planner proves jobs_leased's
        -- predicate and walks every job that ever ran (until vacuum) instead of the primary key.
        WHERE j.id = i.job_id AND j.id = ANY (p_jobs) AND j.state = (SELECT 'running'::text) AND j.claims = i.claim
        RETURNING j.id, j.example_id, j.run_id, j.judge, j.attempts, j.claims
    ), inserted AS (
        INSERT INTO votes (example_id, judge, run_id, label, rationale, latency_ms, prompt_tokens,
                           completion_tokens, cached_tokens, cache_write_tokens, thinking_tokens, model_version,
                           prompt_hash, cost_usd, attempts, claims)
        SELECT f.example_id, f.judge, f.run_id, i.label, i.rationale, i.latency_ms, i.prompt_tokens,
               i.completion_tokens, i.cached_tokens, i.cache_write_tokens, i.thinking_tokens, i.model_version,
               i.prompt_hash, i.cost, f.attempts, f.claims
        FROM finished f JOIN input i ON i.job_id = f.id
        RETURNING run_id, judge, cost_usd, prompt_tokens, cached_tokens, cache_write_tokens, completion_tokens,
                  thinking_tokens
    ), spent AS (
        INSERT INTO judge_spend AS s (run_id, judge, slot, votes, cost_usd, input_tokens, cached_tokens,
                                      cache_write_tokens, output_tokens, thinking_tokens)
        SELECT v.run_id, v.judge, pg_backend_pid(), count(*), coalesce(sum(v.cost_usd), 0),
               coalesce(sum(v.prompt_tokens), 0), coalesce(sum(v.cached_tokens), 0),
               coalesce(sum(v.cache_write_tokens), 0), coalesce(sum(v.completion_tokens), 0),
               coalesce(sum(v.thinking_tokens), 0)
        FROM inserted v GROUP BY v.run_id, v.judge
        ORDER BY v.run_id, v.judge
        ON CONFLICT (run_id, judge, slot) DO UPDATE
        SET votes = s.votes + excluded.votes, cost_usd = s.cost_usd + excluded.cost_usd,
            input_tokens = s.input_tokens + excluded.input_tokens,
            cached_tokens = s.cached_tokens + excluded.cached_tokens,
            cache_write_tokens = s.cache_write_tokens + excluded.cache_write_tokens,
            output_tokens = s.output_tokens + excluded.output_tokens,
            thinking_tokens = s.thinking_tokens + excluded.thinking_tokens
    )
    SELECT array_agg(f.id), array_agg(f.example_id) INTO done_jobs, done_examples FROM finished f;
    PERFORM jury_settle_examples(done_examples, false);
    RETURN QUERY SELECT unnest(done_jobs);
END
$$;

-- Keeps the invalid answers of claims the caller still holds.
CREATE OR REPLACE FUNCTION jury_record_invalid_answers(
    p_owner text, p_jobs bigint[], p_claims int[], p_answers text[], p_errors text[]
) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO invalid_answers (job_id, claim, run_id, example_id, judge, answer, error)
    SELECT j.id, i.claim, j.run_id, j.example_id, j.judge, i.answer, i.error
    FROM unnest(p_jobs, p_claims, p_answers, p_errors) AS i (job_id, claim, answer, error)
    JOIN jobs j ON j.id = i.job_id AND j.claims = i.claim AND j.lease_owner = p_owner
    ON CONFLICT (job_id, claim) DO NOTHING
$$;

-- Gives back the claims (p_jobs[i], p_claims[i]) after a call that gave no vote. p_kinds[i] says
-- what the failure was:
--   'answer'    the judge answered wrongly (unparseable, outside the taxonomy, refused the
--               request): the attempt counts, and the outage streak, if any, is over;
--   'transient' waiting cures it (429, 5xx, timeout, dropped connection): the attempt is
--               refunded and the streak grows (retrying_since is when it began);
--   'returned'  the judge was never really asked (the worker stopped, or cannot call it):
--               the attempt is refunded and the streak left as it was.
-- Jobs with p_final true fail for good and their examples are settled; the others go back to
-- pending after p_delay_seconds. p_capped_retry_after[i], when set, is a Retry-After the run's
-- cap cut short: counted per judge in judge_retry_caps. Returns the jobs whose claim still held.
CREATE OR REPLACE FUNCTION jury_release_jobs(
    p_owner text, p_jobs bigint[], p_claims int[], p_kinds text[], p_errors text[],
    p_delay_seconds double precision[], p_final boolean[], p_capped_retry_after double precision[]
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    released_jobs bigint[];
    failed_examples bigint[];
BEGIN
    IF EXISTS (SELECT 1 FROM unnest(p_kinds) AS k (kind) WHERE k.kind NOT IN ('answer', 'transient', 'returned')) THEN
        RAISE EXCEPTION 'jury_release_jobs: a kind is not one of answer, transient, returned';
    END IF;
    PERFORM jury_lock_examples_of(p_jobs);
    WITH input AS (
        SELECT * FROM unnest(p_jobs, p_claims, p_kinds, p_errors, p_delay_seconds, p_final, p_capped_retry_after)
            AS i (job_id, claim, kind, error, delay, final, capped)
    ), released AS (
        UPDATE jobs j
        SET state = CASE WHEN i.final THEN 'failed' ELSE 'pending' END,
            attempts = CASE WHEN i.kind = 'answer' THEN j.attempts ELSE j.attempts - 1 END,
            transient_failures = CASE i.kind WHEN 'answer' THEN 0
                                             WHEN 'transient' THEN j.transient_failures + 1
                                             ELSE j.transient_failures END,
            retrying_since = CASE i.kind WHEN 'answer' THEN NULL
                                         WHEN 'transient' THEN coalesce(j.retrying_since, now())
                                         ELSE j.retrying_since END,
            run_after = now() + make_interval(secs => i.delay),
            lease_owner = NULL, lease_expires_at = NULL, last_error = i.error, updated_at = now()
        FROM input i
        -- (SELECT 'running'), not 'running': compared to a constant, the planner proves jobs_leased's
        -- predicate and walks every job that ever ran (until vacuum) instead of the primary key.
        WHERE j.id = i.job_id AND j.id = ANY (p_jobs) AND j.state = (SELECT 'running'::text) AND j.claims = i.claim
        RETURNING j.id, j.example_id, j.run_id, j.judge, i.final, i.capped
    ), caps AS (
        INSERT INTO judge_retry_caps AS c (run_id, judge, capped, longest_asked, last_capped_at)
        SELECT r.run_id, r.judge, count(*), max(r.capped), now()
        FROM released r WHERE r.capped IS NOT NULL
        GROUP BY r.run_id, r.judge
        ON CONFLICT (run_id, judge) DO UPDATE
        SET capped = c.capped + excluded.capped, longest_asked = greatest(c.longest_asked, excluded.longest_asked),
            last_capped_at = excluded.last_capped_at
    )
    SELECT array_agg(r.id), array_agg(r.example_id) FILTER (WHERE r.final) INTO released_jobs, failed_examples
    FROM released r;
    PERFORM jury_settle_examples(failed_examples, true);
    RETURN QUERY SELECT unnest(released_jobs);
END
$$;

-- A job given back (a failed call, a stopping worker, an expired lease) after its example was
-- decided early is cancelled instead of waiting to be called again: nothing needs its vote.
-- Only releases fire it; the callers hold the example's lock already.
CREATE OR REPLACE FUNCTION jury_cancel_unneeded_job() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM examples e WHERE e.id = NEW.example_id AND e.state <> 'voting') THEN
        NEW.state := 'cancelled';
        UPDATE examples SET jobs_open = jobs_open - 1, jobs_cancelled = jobs_cancelled + 1 WHERE id = NEW.example_id;
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER jobs_cancel_unneeded BEFORE UPDATE OF state ON jobs
FOR EACH ROW WHEN (OLD.state = 'running' AND NEW.state = 'pending')
EXECUTE FUNCTION jury_cancel_unneeded_job();

-- Gives back, as a return (no attempt counted), the jobs the database says a worker holds but
-- the worker does not track: a claim that committed while its answer was lost, or a job whose
-- recorded outcome the database lost (a crash under asynchronous commit, a failover to a
-- replica behind). Such jobs run under a live worker that knows nothing of them: no reaper
-- takes them back. Only the worker itself calls this, after one of its statements failed, from
-- the task that claims, so nothing it claims is between the claim and the tracking meanwhile.
CREATE OR REPLACE FUNCTION jury_return_untracked_jobs(p_owner text, p_tracked bigint[]) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_jobs bigint[];
    v_claims int[];
    v_count int;
BEGIN
    SELECT array_agg(j.id ORDER BY j.id), array_agg(j.claims ORDER BY j.id) INTO v_jobs, v_claims
    FROM jobs j
    WHERE j.state = 'running' AND j.lease_owner = p_owner AND j.id <> ALL (coalesce(p_tracked, '{}'));
    IF v_jobs IS NULL THEN
        RETURN 0;
    END IF;
    v_count := cardinality(v_jobs);
    SELECT count(*) INTO v_count
    FROM jury_release_jobs(
        p_owner, v_jobs, v_claims, array_fill('returned'::text, ARRAY[v_count]),
        array_fill('held by this worker without its knowing (a claim that committed unheard, or an outcome the database lost); given back'::text, ARRAY[v_count]),
        array_fill(0::float8, ARRAY[v_count]), array_fill(false, ARRAY[v_count]),
        array_fill(NULL::float8, ARRAY[v_count]));
    RETURN v_count;
END
$$;

-- Takes back the running jobs whose lease passed and whose owner's lease passed too (or that
-- have no registered owner): back to pending, or failed once they used the run's max_attempts.
-- Any process may call it at any time; call it until it returns less than p_limit.
-- p_lock_timeout_ms bounds its wait for the examples it locks, so that a long transaction
-- elsewhere delays the reaping, never the process that reaps; not its commit, which waits for
-- the lock every notifying commit of the server takes.
CREATE OR REPLACE FUNCTION jury_reap_expired_leases(p_limit int DEFAULT 1000, p_lock_timeout_ms int DEFAULT NULL)
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

-- Puts up to p_limit failed jobs of a run (optionally one batch, one judge) back to pending with
-- fresh attempts. Their examples vote again: a verdict they already had is withdrawn and
-- decided anew, and the jobs an example gave up when it fell short wait behind the retried ones.
CREATE OR REPLACE FUNCTION jury_reset_failed_jobs(p_run bigint, p_batch text, p_judge text, p_limit int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    failed bigint[];
    short bigint[];
    retried int;
BEGIN
    SELECT array_agg(x.id) INTO failed FROM (
        SELECT j.id
        FROM jobs j JOIN examples e ON e.id = j.example_id
        WHERE j.run_id = p_run AND j.state = 'failed'
          AND (p_batch IS NULL OR e.batch = p_batch) AND (p_judge IS NULL OR j.judge = p_judge)
        ORDER BY j.id
        LIMIT p_limit
    ) x;
    IF failed IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM jury_lock_examples_of(failed);
    -- Examples whose failures had left too few jobs for a verdict, before this retry.
    SELECT array_agg(e.id) INTO short FROM examples e
    WHERE e.id = ANY (ARRAY(SELECT j.example_id FROM jobs j WHERE j.id = ANY (failed)))
      AND e.jobs_total - e.jobs_failed < e.votes_needed AND e.jobs_cancelled > 0;
    WITH retried_jobs AS (
        UPDATE jobs j
        SET state = 'pending', attempts = 0, transient_failures = 0, retrying_since = NULL, run_after = now(),
            last_error = NULL, updated_at = now()
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
    -- Their cancelled jobs come back, waiting behind the retried ones: once those have answered,
    -- the waiting ones are released, unless the votes by then already decide the example.
    WITH revived AS (
        UPDATE jobs j SET state = 'waiting', updated_at = now()
        WHERE j.example_id = ANY (short) AND j.state = 'cancelled'
        RETURNING j.example_id
    ), counted AS (
        SELECT r.example_id, count(*)::int AS n FROM revived r GROUP BY r.example_id
    )
    UPDATE examples e
    SET jobs_open = e.jobs_open + c.n, jobs_waiting = e.jobs_waiting + c.n, jobs_cancelled = e.jobs_cancelled - c.n
    FROM counted c WHERE e.id = c.example_id;
    PERFORM pg_notify('jury_jobs', '');
    RETURN retried;
END
$$;

-- `jury retry`: locks the run for work (reopening it if done) and resets a chunk of its failed
-- jobs; call it until it returns 0. Chunks keep each transaction short, so a large retry never
-- holds the locks that lease renewals and the reaper need.
CREATE OR REPLACE FUNCTION jury_retry_failed(p_run bigint, p_batch text, p_judge text, p_limit int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_retried int;
BEGIN
    PERFORM jury_lock_run_for_work(p_run);
    v_retried := jury_reset_failed_jobs(p_run, p_batch, p_judge, p_limit);
    IF v_retried > 0 THEN
        PERFORM jury_reopen_run(p_run);
    END IF;
    RETURN v_retried;
END;
$$;

-- A judge whose requests the provider refuses as malformed stops on every worker, but the calls
-- that made the streak each took an attempt from its job, though the fault was the request's.
-- `jury judge resume`, once the judge is fixed, gives each waiting job whose last call was
-- refused that attempt back, in the transaction that closes the breaker: by then every worker
-- has recorded what it held. Jobs under way are skipped (SKIP LOCKED, in id order, so that two
-- refunds never wait on each other).
CREATE OR REPLACE FUNCTION jury_refund_refused_requests(p_run bigint, p_judge text) RETURNS int
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

-- What foreign keys would cascade: an example's jobs, votes, verdicts and invalid answers go
-- with it. A purge deletes a chunk's verdicts itself first, while their batch can still be
-- counted out; here they go with a whole run, whose counts went with it.
CREATE OR REPLACE FUNCTION jury_delete_work_of_examples() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM jobs j USING old_examples o WHERE j.example_id = o.id;
    DELETE FROM votes v USING old_examples o WHERE v.example_id = o.id;
    DELETE FROM invalid_answers a USING old_examples o WHERE a.example_id = o.id;
    DELETE FROM verdicts v USING old_examples o WHERE v.example_id = o.id;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER examples_delete_work AFTER DELETE ON examples REFERENCING OLD TABLE AS old_examples
FOR EACH STATEMENT EXECUTE FUNCTION jury_delete_work_of_examples();

-- A run's examples go with it (and, through the trigger above, all their work).
CREATE OR REPLACE FUNCTION jury_delete_examples_of_runs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM examples e USING old_runs o WHERE e.run_id = o.id;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER runs_delete_examples AFTER DELETE ON runs REFERENCING OLD TABLE AS old_runs
FOR EACH STATEMENT EXECUTE FUNCTION jury_delete_examples_of_runs();
