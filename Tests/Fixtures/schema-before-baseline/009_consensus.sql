-- Consensus you can trust: verdicts that say which rule made them (with its parameters), who
-- decided (the panel or a person), and what became of the production label; the history of
-- earlier verdicts when a run is reduced again; early decisions that cancel the jobs a hopeless
-- example no longer needs; judges asked in order; and calibrations kept per run.

-- Jobs: 'waiting' for the judges of a lower order to answer first; 'cancelled' when the
-- example was decided without them.
ALTER TABLE jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_state_check
    CHECK (state IN ('waiting', 'pending', 'running', 'done', 'failed', 'cancelled'));
ALTER TABLE jobs ADD COLUMN judge_order int NOT NULL DEFAULT 1;

-- jobs_open counts waiting jobs too; jobs_waiting says how many of them wait, so the transitions
-- know without reading the jobs whether a next order is due. jobs_cancelled are the calls saved.
-- reviewed_at: when a person's label (jury import-labels) came in; that label then decides.
ALTER TABLE examples
    ADD COLUMN jobs_waiting int NOT NULL DEFAULT 0,
    ADD COLUMN jobs_cancelled int NOT NULL DEFAULT 0,
    ADD COLUMN reviewed_at timestamptz;

ALTER TABLE verdicts
    ADD COLUMN rule_params jsonb,
    ADD COLUMN decided_by text NOT NULL DEFAULT 'panel' CHECK (decided_by IN ('panel', 'people')),
    -- What became of the production label (source_label): kept, replaced by the panel's,
    -- replaced by a request to clarify, or dropped (no agreement). NULL without a source label.
    ADD COLUMN outcome text CHECK (outcome IN ('keep', 'relabel', 'clarify', 'drop')),
    -- Decided before every judge answered, because the rule could no longer agree.
    ADD COLUMN early boolean NOT NULL DEFAULT false;
UPDATE verdicts v
SET outcome = CASE WHEN v.status <> 'agreed' THEN 'drop'
                   WHEN v.conflicts_with_source THEN 'relabel' ELSE 'keep' END
FROM examples e
WHERE e.id = v.example_id AND e.source_label IS NOT NULL;
ALTER TABLE verdicts DROP COLUMN conflicts_with_source;
CREATE INDEX verdicts_run_outcome ON verdicts (run_id, outcome) WHERE outcome IS NOT NULL;

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

-- Enqueue, as in 005, with each judge's order: the jobs of judges above the lowest order wait.
DROP FUNCTION jury_enqueue_incoming(bigint, text, text[], int);
CREATE FUNCTION jury_enqueue_incoming(p_run bigint, p_batch text, p_judges text[], p_orders int[], p_votes_needed int)
RETURNS TABLE (inserted_examples bigint, inserted_jobs bigint, changed_examples bigint, changed_sample text)
LANGUAGE plpgsql AS $$
DECLARE
    v_first int := (SELECT min(o) FROM unnest(p_orders) AS o);
    v_waiting int := (SELECT count(*) FROM unnest(p_orders) AS o WHERE o > v_first);
BEGIN
    WITH added AS (
        INSERT INTO examples (run_id, batch, external_id, payload, human_label, source_label,
                              jobs_total, jobs_open, jobs_waiting, votes_needed)
        SELECT p_run, p_batch, i.external_id, i.payload, i.human_label, i.source_label,
               cardinality(p_judges), cardinality(p_judges), v_waiting, p_votes_needed
        FROM jury_incoming i ORDER BY i.line
        ON CONFLICT (run_id, external_id) DO NOTHING
        RETURNING id
    ), added_jobs AS (
        INSERT INTO jobs (run_id, example_id, judge, judge_order, state)
        SELECT p_run, a.id, j.judge, j.judge_order, CASE WHEN j.judge_order > v_first THEN 'waiting' ELSE 'pending' END
        FROM added a CROSS JOIN unnest(p_judges, p_orders) AS j (judge, judge_order)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM added), (SELECT count(*) FROM added_jobs)
    INTO inserted_examples, inserted_jobs;

    SELECT count(*), coalesce(to_jsonb((array_agg(i.external_id ORDER BY i.line))[1:5]), '[]')::text
    INTO changed_examples, changed_sample
    FROM jury_incoming i
    JOIN examples e ON e.run_id = p_run AND e.external_id = i.external_id
    WHERE e.payload <> i.payload OR e.batch <> p_batch OR e.human_label IS DISTINCT FROM i.human_label
       OR e.source_label IS DISTINCT FROM i.source_label;

    IF inserted_jobs > 0 THEN
        PERFORM pg_notify('jury_jobs', '');
    END IF;
    RETURN NEXT;
END;
$$;

-- Settles examples whose jobs closed, as in 001, and then:
--   early decision: an example (without a human label, whose run's rule decides early) whose
--   votes already rule agreement out (two different labels under unanimity; a quorum that its
--   most voted label cannot reach with the jobs still open) is ready at once, and its jobs
--   that were not yet claimed are cancelled (a job under way finishes; its vote is kept);
--   ordered judges: an example whose open jobs all wait has its next order's jobs released.
CREATE OR REPLACE FUNCTION jury_settle_examples(p_examples bigint[], p_failed boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_ready int;
    v_hopeless bigint[];
    v_released int;
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
    SELECT count(*) INTO v_ready FROM updated WHERE updated.state = 'ready';

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

    IF v_hopeless IS NOT NULL THEN
        WITH cancelled AS (
            UPDATE jobs j SET state = 'cancelled', updated_at = now()
            WHERE j.example_id = ANY (v_hopeless) AND j.state IN ('pending', 'waiting')
            RETURNING j.example_id
        ), counted AS (
            SELECT c.example_id, count(*)::int AS n FROM cancelled c GROUP BY c.example_id
        )
        UPDATE examples e
        SET jobs_open = e.jobs_open - coalesce(c.n, 0), jobs_cancelled = e.jobs_cancelled + coalesce(c.n, 0),
            jobs_waiting = 0, state = 'ready'
        FROM unnest(v_hopeless) AS h (id) LEFT JOIN counted c ON c.example_id = h.id
        WHERE e.id = h.id AND e.id = ANY (v_hopeless);
        v_ready := v_ready + cardinality(v_hopeless);
    END IF;

    -- The waiting jobs of the next order, on examples where nothing else is open.
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

    IF v_ready > 0 THEN
        PERFORM pg_notify('jury_ready', '');
    END IF;
    IF v_released > 0 THEN
        PERFORM pg_notify('jury_jobs', '');
    END IF;
END
$$;

-- A job given back (a failed call, a stopping worker, an expired lease) after its example was
-- decided early is cancelled instead of waiting to be called again: nothing needs its vote.
-- Only releases fire it; the callers hold the example's lock already.
CREATE FUNCTION jury_cancel_unneeded_job() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM examples e WHERE e.id = NEW.example_id AND e.state <> 'voting') THEN
        NEW.state := 'cancelled';
        UPDATE examples SET jobs_open = jobs_open - 1, jobs_cancelled = jobs_cancelled + 1 WHERE id = NEW.example_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER jobs_cancel_unneeded BEFORE UPDATE OF state ON jobs
FOR EACH ROW WHEN (OLD.state = 'running' AND NEW.state = 'pending')
EXECUTE FUNCTION jury_cancel_unneeded_job();

-- The reducer's claim, as in 005, with what the verdict now needs: the human label, whether a
-- person reviewed the example, and whether it is decided early (before every judge answered:
-- jobs were cancelled, or are still under way). Runs under dawid-skene are left out.
DROP FUNCTION jury_claim_ready_examples(bigint, int);
CREATE FUNCTION jury_claim_ready_examples(p_run bigint, p_limit int)
RETURNS TABLE (example_id bigint, run_id bigint, source_label text, human_label text, reviewed boolean,
               early boolean, judge text, label text)
LANGUAGE sql AS $$
    WITH ready AS (
        SELECT e.id, e.run_id, e.source_label, e.human_label, e.reviewed_at IS NOT NULL AS reviewed,
               e.jobs_open > 0 OR e.jobs_cancelled > 0 AS early
        FROM examples e
        WHERE e.state = 'ready' AND (p_run IS NULL OR e.run_id = p_run)
          -- Dawid-Skene decides whole batches at once (jury reduce, or the reducer when one is complete).
          AND e.run_id <> ALL (ARRAY(SELECT r.id FROM runs r WHERE r.config #>> '{consensus,rule}' = 'dawid-skene'))
        ORDER BY e.id LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    SELECT r.id, r.run_id, r.source_label, r.human_label, r.reviewed, r.early, v.judge, v.label
    FROM ready r LEFT JOIN votes v ON v.example_id = r.id
    ORDER BY r.id
$$;

-- The reducer's verdicts, and the examples' move to decided, in the caller's transaction (the
-- one that claimed them). A verdict already there is kept. A verdict made under a rule the run
-- no longer has (jury reduce changed it meanwhile) is not stored: its example stays ready and
-- is decided again under the new rule. Returns how many examples moved.
DROP FUNCTION jury_record_verdicts(bigint[], bigint[], text[], text[], float8[], int[], text[], boolean[]);
CREATE FUNCTION jury_record_verdicts(
    p_examples bigint[], p_runs bigint[], p_labels text[], p_statuses text[], p_agreements float8[],
    p_votes int[], p_rules text[], p_rule_params jsonb[], p_decided_by text[], p_outcomes text[], p_early boolean[]
) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_decided int;
BEGIN
    WITH current AS (
        SELECT n.*
        FROM unnest(p_examples, p_runs, p_labels, p_statuses, p_agreements, p_votes, p_rules, p_rule_params,
                    p_decided_by, p_outcomes, p_early)
             AS n (example_id, run_id, label, status, agreement, votes, rule, rule_params, decided_by, outcome, early)
        JOIN runs r ON r.id = n.run_id
        WHERE n.rule = CASE r.config #>> '{consensus,rule}'
                           WHEN 'quorum' THEN 'quorum:' || coalesce(r.config #>> '{consensus,quorum}', '0')
                           ELSE r.config #>> '{consensus,rule}' END
    ), inserted AS (
        INSERT INTO verdicts (example_id, run_id, label, status, agreement, votes, rule, rule_params, decided_by,
                              outcome, early)
        SELECT c.example_id, c.run_id, c.label, c.status, c.agreement, c.votes, c.rule, c.rule_params, c.decided_by,
               c.outcome, c.early
        FROM current c
        ON CONFLICT (example_id) DO NOTHING
    )
    UPDATE examples e SET state = 'decided'
    FROM current c
    WHERE e.id = c.example_id AND e.id = ANY (p_examples);
    GET DIAGNOSTICS v_decided = ROW_COUNT;
    RETURN v_decided;
END;
$$;

-- Replaces verdicts of a run (jury reduce, jury import-labels): those there move to
-- verdict_history first. Runs in the caller's transaction, which holds the run's row lock so
-- two reductions of one run take turns. Returns how many verdicts it wrote.
CREATE FUNCTION jury_replace_verdicts(
    p_run bigint, p_examples bigint[], p_labels text[], p_statuses text[], p_agreements float8[], p_votes int[],
    p_rules text[], p_rule_params jsonb[], p_decided_by text[], p_outcomes text[], p_early boolean[]
) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_written int;
BEGIN
    WITH old AS (
        DELETE FROM verdicts v WHERE v.run_id = p_run AND v.example_id = ANY (p_examples)
        RETURNING v.*
    )
    INSERT INTO verdict_history (example_id, run_id, label, status, agreement, votes, rule, rule_params,
                                 decided_by, outcome, early, decided_at)
    SELECT o.example_id, o.run_id, o.label, o.status, o.agreement, o.votes, o.rule, o.rule_params,
           o.decided_by, o.outcome, o.early, o.decided_at
    FROM old o;
    INSERT INTO verdicts (example_id, run_id, label, status, agreement, votes, rule, rule_params, decided_by,
                          outcome, early)
    SELECT n.example_id, p_run, n.label, n.status, n.agreement, n.votes, n.rule, n.rule_params, n.decided_by,
           n.outcome, n.early
    FROM unnest(p_examples, p_labels, p_statuses, p_agreements, p_votes, p_rules, p_rule_params, p_decided_by,
                p_outcomes, p_early)
         AS n (example_id, label, status, agreement, votes, rule, rule_params, decided_by, outcome, early);
    GET DIAGNOSTICS v_written = ROW_COUNT;
    RETURN v_written;
END;
$$;

-- People's labels from a review (jury import-labels), by external id, in the caller's
-- transaction. Every id must be in the run: the ids that are not come back, and the caller
-- rolls back. Returns the examples labelled (or, when some are unknown, nothing).
CREATE FUNCTION jury_import_labels(p_run bigint, p_external_ids text[], p_labels text[])
RETURNS TABLE (example_id bigint, unknown_id text)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    SELECT NULL::bigint, i.external_id
    FROM unnest(p_external_ids) AS i (external_id)
    WHERE NOT EXISTS (SELECT 1 FROM examples e WHERE e.run_id = p_run AND e.external_id = i.external_id);
    IF FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
    UPDATE examples e SET human_label = i.label, reviewed_at = now()
    FROM unnest(p_external_ids, p_labels) AS i (external_id, label)
    WHERE e.run_id = p_run AND e.external_id = i.external_id
    RETURNING e.id, NULL::text;
END;
$$;

-- Job counts by state, now with waiting and cancelled jobs.
CREATE OR REPLACE VIEW jury_run_progress AS
SELECT r.name AS run,
       r.state,
       (SELECT count(*) FROM examples e WHERE e.run_id = r.id) AS examples,
       (SELECT count(*) FROM examples e WHERE e.run_id = r.id AND e.state = 'voting') AS voting,
       (SELECT count(*) FROM examples e WHERE e.run_id = r.id AND e.state = 'ready') AS ready,
       (SELECT count(*) FROM examples e WHERE e.run_id = r.id AND e.state = 'decided') AS decided,
       j.pending, j.running, j.done, j.failed,
       v.agreed, v.disagreed, v.insufficient,
       j.waiting, j.cancelled
FROM runs r
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
           count(*) FILTER (WHERE state = 'running') AS running,
           count(*) FILTER (WHERE state = 'done') AS done,
           count(*) FILTER (WHERE state = 'failed') AS failed,
           count(*) FILTER (WHERE state = 'waiting') AS waiting,
           count(*) FILTER (WHERE state = 'cancelled') AS cancelled
    FROM jobs WHERE jobs.run_id = r.id
) j ON true
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE status = 'agreed') AS agreed,
           count(*) FILTER (WHERE status = 'disagreed') AS disagreed,
           count(*) FILTER (WHERE status = 'insufficient') AS insufficient
    FROM verdicts WHERE verdicts.run_id = r.id
) v ON true;

-- Per run: examples decided early, the judge calls that saved (cancelled jobs), and what those
-- calls would have cost at each judge's average cost per vote so far.
CREATE VIEW jury_early_decisions AS
SELECT r.name AS run,
       (SELECT count(*) FROM examples e WHERE e.run_id = r.id AND e.jobs_cancelled > 0) AS examples_decided_early,
       coalesce(sum(c.cancelled), 0) AS calls_saved,
       sum(c.cancelled * s.cost_usd / nullif(s.votes, 0)) AS cost_saved_usd
FROM runs r
LEFT JOIN (
    SELECT j.run_id, j.judge, count(*) AS cancelled FROM jobs j WHERE j.state = 'cancelled' GROUP BY j.run_id, j.judge
) c ON c.run_id = r.id
LEFT JOIN judge_spend s ON s.run_id = c.run_id AND s.judge = c.judge
GROUP BY r.id, r.name;

-- Per run: what became of the production labels, and who decided.
CREATE VIEW jury_outcomes AS
SELECT r.name AS run,
       count(*) FILTER (WHERE v.outcome = 'keep') AS keep,
       count(*) FILTER (WHERE v.outcome = 'relabel') AS relabel,
       count(*) FILTER (WHERE v.outcome = 'clarify') AS clarify,
       count(*) FILTER (WHERE v.outcome = 'drop') AS drop,
       count(*) FILTER (WHERE v.outcome IS NULL) AS without_source_label,
       count(*) FILTER (WHERE v.decided_by = 'people') AS decided_by_people
FROM runs r JOIN verdicts v ON v.run_id = r.id
GROUP BY r.id, r.name;

-- Examples for people: the panel did not agree, or it agreed against the production label;
-- with every vote and rationale.
CREATE OR REPLACE VIEW jury_disagreements AS
SELECT r.name AS run, e.batch, e.external_id, v.status, v.agreement, e.human_label, e.source_label,
       (SELECT jsonb_object_agg(x.judge, x.label) FROM votes x WHERE x.example_id = e.id) AS votes,
       v.outcome,
       (SELECT jsonb_object_agg(x.judge, x.rationale) FROM votes x WHERE x.example_id = e.id) AS rationales
FROM verdicts v
JOIN examples e ON e.id = v.example_id
JOIN runs r ON r.id = v.run_id
WHERE v.decided_by = 'panel' AND (v.status <> 'agreed' OR v.outcome IN ('relabel', 'clarify'));
