-- Jury's tables: a run's examples, one job per example and judge, the votes that replace the
-- jobs, the verdicts, and what keeps a fleet of workers in step (limits, breakers, spend,
-- processes, counters).
--
-- The functions in the files after this one are the only writers of the queue's tables: every
-- transition is one statement, atomic, and locks rows in one order (a run, then its examples by
-- id, then their jobs), so concurrent processes cannot deadlock.
--
-- The hottest tables carry no foreign keys (examples to runs; jobs, votes and verdicts to their
-- example and run). Each key's check was a lookup and a row lock per row inserted, on the
-- inserts that bound a run: four jobs per example at enqueue, a vote per job, a verdict per
-- example. Nothing needs them to hold on insert, since only jury_insert_lines inserts examples
-- and jobs (under the run's lock, for the examples it has just inserted), only
-- jury_record_votes inserts votes (for jobs whose examples it has locked), and only the
-- reducer's functions insert verdicts (for examples they hold). What the keys' ON DELETE
-- CASCADE did, two statement-level triggers do (3_queue.sql): a run's examples go with it, and
-- an example's jobs, votes, verdicts and invalid answers with it.

CREATE TABLE runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    -- The run's YAML as JSON: judges, taxonomy, prompt, rule, limits, prices, retries.
    config      jsonb NOT NULL,
    -- 'done' once every example is decided (jury_finish_runs); enqueue reopens it.
    state       text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'cancelled', 'done')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

-- Each config `jury run update` replaced, with when and by whom: every vote can be traced to
-- the settings it was cast under. What gives votes their meaning (the taxonomy, the prompt, the
-- rule, the panel's names) never changes in place.
CREATE TABLE run_config_history (
    id          bigserial PRIMARY KEY,
    run_id      bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    config      jsonb NOT NULL,
    replaced_at timestamptz NOT NULL DEFAULT now(),
    replaced_by text NOT NULL DEFAULT current_user
);

CREATE INDEX run_config_history_by_run ON run_config_history (run_id, replaced_at);

-- An example and its place in the queue. The counts of its jobs are kept on the row by the
-- transitions, so that whether it is ready reads one row:
--   jobs_open       jobs not yet closed (by a vote, a failure or a cancel), waiting ones included;
--                   the example is ready when none are left, or when so many failed that the
--                   rule can no longer agree (jury_next_state);
--   jobs_waiting    of those, the jobs of judges of a later order, not yet asked;
--   jobs_cancelled  calls saved: jobs closed because the example was decided without them.
-- Updated on every vote: fillfactor 70 keeps those updates on the row's page (HOT).
CREATE TABLE examples (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          bigint NOT NULL,
    batch           text NOT NULL,
    external_id     text NOT NULL,
    payload         jsonb NOT NULL,
    -- A person's label: the example calibrates the panel, so it waits for every judge.
    human_label     text,
    -- What the production log said, when it said anything.
    source_label    text,
    jobs_total      int NOT NULL,
    jobs_open       int NOT NULL,
    jobs_failed     int NOT NULL DEFAULT 0,
    -- The fewest votes with which the run's rule can still agree.
    votes_needed    int NOT NULL,
    state           text NOT NULL DEFAULT 'voting' CHECK (state IN ('voting', 'ready', 'decided')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    jobs_waiting    int NOT NULL DEFAULT 0,
    jobs_cancelled  int NOT NULL DEFAULT 0,
    -- When a person's label came in (jury import-labels); that label then decides.
    reviewed_at     timestamptz,
    UNIQUE (run_id, external_id)
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05);

CREATE INDEX examples_run_batch ON examples (run_id, batch);
-- A reducer's claim takes each of its runs' first ready examples in turn.
CREATE INDEX examples_ready_by_run ON examples (run_id, id) WHERE state = 'ready';

-- One job per example and judge, from enqueue until its vote replaces it (recording a vote
-- deletes the job: the vote keeps all a done job told, and vacuum reuses the space).
--   waiting   a judge of a later order (judge_order): asked once the earlier orders have
--             answered, cancelled if their votes already rule agreement out;
--   pending   claimable once run_after has passed (retries wait there);
--   running   leased to lease_owner until lease_expires_at; `claims` numbers the claim, and
--             only the claim that holds the job may record it;
--   failed    out of attempts, or its example could not be read; `jury retry` sets it pending;
--   cancelled not needed: its example was decided without it.
-- `attempts` counts the answers that were wrong (the run's max_attempts bounds them). Failures
-- that waiting cures (429, 5xx, timeouts, dropped connections) use none: transient_failures
-- counts the streak, for the backoff, and retrying_since is when it began, for the give-up time.
CREATE TABLE jobs (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id              bigint NOT NULL,
    example_id          bigint NOT NULL,
    judge               text NOT NULL,
    state               text NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('waiting', 'pending', 'running', 'failed', 'cancelled')),
    attempts            int NOT NULL DEFAULT 0,
    run_after           timestamptz NOT NULL DEFAULT now(),
    lease_owner         text,
    lease_expires_at    timestamptz,
    last_error          text,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    claims              int NOT NULL DEFAULT 0,
    transient_failures  int NOT NULL DEFAULT 0,
    retrying_since      timestamptz,
    judge_order         int NOT NULL DEFAULT 1,
    UNIQUE (example_id, judge)
) WITH (autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05);

-- Claims walk this partial index only: jobs leave it once claimed.
CREATE INDEX jobs_claimable ON jobs (run_id, judge, run_after, id) WHERE state = 'pending';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_failed ON jobs (run_id, judge) WHERE state = 'failed';
-- Few jobs carry an error at a time (a vote takes the job away): the latest per judge is cheap to find.
CREATE INDEX jobs_erring ON jobs (run_id, judge, updated_at) WHERE last_error IS NOT NULL;

-- A judge's vote on an example, with what it cost. completion_tokens is all the output billed,
-- thinking included; cache_write_tokens and thinking_tokens are NULL when the provider did not
-- say. attempts and claims are the job's when it was recorded.
CREATE TABLE votes (
    example_id          bigint NOT NULL,
    judge               text NOT NULL,
    run_id              bigint NOT NULL,
    label               text NOT NULL,
    rationale           text,
    latency_ms          int,
    prompt_tokens       bigint,
    completion_tokens   bigint,
    attempts            int NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    cached_tokens       bigint,
    model_version       text,
    prompt_hash         text,
    cost_usd            double precision,
    claims              int,
    cache_write_tokens  bigint,
    thinking_tokens     bigint,
    PRIMARY KEY (example_id, judge)
);

-- A judge's latest votes, without reading the other judges'.
CREATE INDEX votes_run_judge_created ON votes (run_id, judge, created_at);

-- Answers that were not a valid vote (not JSON, no label, a label outside the taxonomy), with
-- what the judge said (truncated), for a person to read and for calibration. One row per
-- claim: recording the same outcome twice counts it once.
CREATE TABLE invalid_answers (
    job_id      bigint NOT NULL,
    claim       int NOT NULL,
    run_id      bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    judge       text NOT NULL,
    answer      text,
    error       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    example_id  bigint NOT NULL,
    PRIMARY KEY (job_id, claim)
);

CREATE INDEX invalid_answers_run_judge ON invalid_answers (run_id, judge);
CREATE INDEX invalid_answers_example ON invalid_answers (example_id);

-- The verdict on an example: the panel's, by the run's rule, or people's.
CREATE TABLE verdicts (
    example_id  bigint PRIMARY KEY,
    run_id      bigint NOT NULL,
    label       text,
    status      text NOT NULL CHECK (status IN ('agreed', 'disagreed', 'insufficient')),
    -- Share of the votes cast that went to the most voted label.
    agreement   double precision NOT NULL,
    votes       int NOT NULL,
    rule        text NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now(),
    rule_params jsonb,
    decided_by  text NOT NULL DEFAULT 'panel' CHECK (decided_by IN ('panel', 'people')),
    -- What became of the production label (source_label): kept, replaced by the panel's,
    -- replaced by a request to clarify, or dropped (no agreement). NULL without one.
    outcome     text CHECK (outcome IN ('keep', 'relabel', 'clarify', 'drop')),
    -- Decided before every judge answered, because the rule could no longer agree.
    early       boolean NOT NULL DEFAULT false
);

CREATE INDEX verdicts_run_status ON verdicts (run_id, status);
CREATE INDEX verdicts_run_outcome ON verdicts (run_id, outcome) WHERE outcome IS NOT NULL;
-- What jury_disagreements shows, and nothing else: it answers at once among millions agreed.
CREATE INDEX verdicts_disputed ON verdicts (run_id, example_id)
    WHERE decided_by = 'panel' AND (status <> 'agreed' OR outcome IN ('relabel', 'clarify'));

-- Verdicts a later reduction replaced, as they were.
CREATE TABLE verdict_history (
    example_id     bigint NOT NULL REFERENCES examples (id) ON DELETE CASCADE,
    run_id         bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    label          text,
    status         text NOT NULL,
    agreement      double precision NOT NULL,
    votes          int NOT NULL,
    rule           text NOT NULL,
    rule_params    jsonb,
    decided_by     text NOT NULL,
    outcome        text,
    early          boolean NOT NULL,
    decided_at     timestamptz NOT NULL,
    superseded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX verdict_history_example ON verdict_history (example_id);
CREATE INDEX verdict_history_run ON verdict_history (run_id, superseded_at);

-- Each `jury calibrate`, as its JSON report: the weighted rule's weights can come from the last.
CREATE TABLE calibrations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    report      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX calibrations_run ON calibrations (run_id, id);

-- Counts kept by the transitions, so that `jury status` and the views answer in milliseconds at
-- ten million jobs. Statement-level triggers (2_counters.sql) add what each statement changed
-- to one row per run, judge ('' for examples and verdicts), counter and backend (slot = its
-- pid): concurrent transitions never wait on each other's counters. Readers sum the slots;
-- jury_compact_counts folds those of backends that are gone into slot 0.
CREATE TABLE run_counts (
    run_id   bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    judge    text NOT NULL,
    counter  text NOT NULL,
    slot     int NOT NULL,
    n        bigint NOT NULL,
    PRIMARY KEY (run_id, judge, counter, slot)
);

-- Spend per run and judge, kept by jury_record_votes in a row per backend as the counts are:
-- the budget check reads a few rows per judge, and records never wait on each other's.
CREATE TABLE judge_spend (
    run_id              bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    judge               text NOT NULL,
    votes               bigint NOT NULL DEFAULT 0,
    cost_usd            double precision NOT NULL DEFAULT 0,
    slot                int NOT NULL DEFAULT 0,
    input_tokens        bigint NOT NULL DEFAULT 0,
    cached_tokens       bigint NOT NULL DEFAULT 0,
    cache_write_tokens  bigint NOT NULL DEFAULT 0,
    output_tokens       bigint NOT NULL DEFAULT 0,
    thinking_tokens     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, judge, slot)
);

-- Rate limits per account (a judge's limit_key: by default its provider and API key variable),
-- shared by every run, judge and worker on the key: a bucket of requests and one of tokens,
-- each holding one second's worth, refilled lazily as of updated_at. Token use is estimated
-- before a call and corrected after it. A provider's 429 or its remaining-budget headers hold
-- the whole key until held_until. NULL per-second rates: no such limit.
CREATE TABLE account_limits (
    limit_key            text PRIMARY KEY,
    requests_per_second  double precision CHECK (requests_per_second > 0),
    tokens_per_second    double precision CHECK (tokens_per_second > 0),
    requests             double precision NOT NULL DEFAULT 0,
    tokens               double precision NOT NULL DEFAULT 0,
    held_until           timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- A judge no retry can cure (a bad key, an unknown model, a used-up quota, requests the
-- provider refuses) stops fleet-wide until a person closes its breaker (`jury judge resume`).
CREATE TABLE judge_breakers (
    run_id     bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    judge      text NOT NULL,
    reason     text NOT NULL,
    opened_by  text,
    opened_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, judge)
);

-- How often a provider asked for a Retry-After longer than the run allows, per judge.
CREATE TABLE judge_retry_caps (
    run_id          bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    judge           text NOT NULL,
    capped          bigint NOT NULL,
    longest_asked   double precision NOT NULL,
    last_capped_at  timestamptz NOT NULL,
    PRIMARY KEY (run_id, judge)
);

-- Worker and reducer processes. A process holds its jobs while its own lease (renewed by its
-- heartbeat) holds: a job's lease is reaped only once its owner's has expired too.
CREATE TABLE workers (
    id                text PRIMARY KEY,
    role              text NOT NULL,
    host              text NOT NULL,
    pid               int NOT NULL,
    in_flight         int NOT NULL DEFAULT 0,
    started_at        timestamptz NOT NULL DEFAULT now(),
    heartbeat_at      timestamptz NOT NULL DEFAULT now(),
    stopped_at        timestamptz,
    lease_expires_at  timestamptz
);

-- The last notification per channel from the queue's hot path (jury_notify_throttled):
-- fillfactor 10 keeps its two rows' frequent updates in place.
CREATE TABLE notify_clock (
    channel text PRIMARY KEY,
    sent_at timestamptz NOT NULL DEFAULT '-infinity'
) WITH (fillfactor = 10);

INSERT INTO notify_clock (channel) VALUES ('jury_ready'), ('jury_jobs');

-- What each role is granted besides the jury_* views the reader sees (9_roles.sql).
CREATE TABLE jury_privileges (
    role  text NOT NULL CHECK (role IN ('jury_worker', 'jury_reader')),
    kind  text NOT NULL CHECK (kind IN ('function', 'table')),
    name  text NOT NULL,
    PRIMARY KEY (role, kind, name)
);
