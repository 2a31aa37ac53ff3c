-- People in the loop (`jury serve`): reviewers, their sign-in sessions, and the review queue.
--
-- The queue of a run is what `jury export --review` writes: the examples whose verdict the
-- panel gave without agreeing, or that replaces the production label. A reviewer is handed one
-- at a time under a lease (review_leases): two reviewers never hold the same example, and an
-- abandoned one goes back to the queue when its lease ends. The most split first: the lowest
-- agreement (under dawid-skene, the chosen label's posterior), then the oldest.
--
-- An answer is a person's label, stored as `jury import-labels` stores one (jury_import_labels,
-- then jury_replace_verdicts: the panel's verdict moves to verdict_history), with who and when
-- in review_answers. Undoing an answer puts back the label the example had and the verdict the
-- answer replaced.

-- Who may use the web app. The token is shown once, when the reviewer is added; only its
-- SHA-256 is kept, so the table cannot sign anybody in.
CREATE TABLE reviewers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    -- viewer: the dashboards; reviewer: also labels; owner: also runs calibrations.
    role        text NOT NULL CHECK (role IN ('viewer', 'reviewer', 'owner')),
    token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);

-- A signed-in browser: its cookie's SHA-256, and the token its forms must carry (CSRF).
CREATE TABLE reviewer_sessions (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    reviewer_id bigint NOT NULL REFERENCES reviewers (id) ON DELETE CASCADE,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

CREATE INDEX reviewer_sessions_expiry ON reviewer_sessions (expires_at);

-- Failed sign-ins by client address, kept for the rate limit's window: every replica of the
-- web app counts the same attempts.
CREATE TABLE signin_failures (
    client     text NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX signin_failures_client ON signin_failures (client, failed_at);

-- The examples a reviewer holds, until leased_until. The token names this lease: an answer
-- given under an earlier one (a page left open past its lease) is refused. With
-- review.per_item above 1 several reviewers hold one example at once, each blind to the
-- others; an owner adjudicating a conflict holds it alone (adjudicating).
CREATE TABLE review_leases (
    example_id   bigint NOT NULL REFERENCES examples (id) ON DELETE CASCADE,
    reviewer_id  bigint NOT NULL REFERENCES reviewers (id) ON DELETE CASCADE,
    run_id       bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    lease_token  uuid NOT NULL DEFAULT gen_random_uuid(),
    leased_until timestamptz NOT NULL,
    adjudicating boolean NOT NULL DEFAULT false,
    PRIMARY KEY (example_id, reviewer_id)
);

CREATE INDEX review_leases_reviewer ON review_leases (reviewer_id, run_id);

-- Examples a reviewer passed over: not offered to them again, still to everybody else.
CREATE TABLE review_skips (
    example_id  bigint NOT NULL REFERENCES examples (id) ON DELETE CASCADE,
    reviewer_id bigint NOT NULL REFERENCES reviewers (id) ON DELETE CASCADE,
    skipped_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (reviewer_id, example_id)
);

-- Every answer, undone ones too: who labelled what, when, and what it replaced.
CREATE TABLE review_answers (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    example_id            bigint NOT NULL REFERENCES examples (id) ON DELETE CASCADE,
    run_id                bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    reviewer_id           bigint NOT NULL REFERENCES reviewers (id),
    label                 text NOT NULL,
    -- An owner's answer to a conflict between people's blind labels.
    adjudicated           boolean NOT NULL DEFAULT false,
    -- This answer gave the example its verdict (alone, as the last of the people who agreed, or
    -- adjudicating); the human label and review time it replaced, which undo puts back.
    decided               boolean NOT NULL DEFAULT false,
    previous_label        text,
    previous_reviewed_at  timestamptz,
    answered_at           timestamptz NOT NULL DEFAULT now(),
    undone_at             timestamptz
);

CREATE INDEX review_answers_reviewer ON review_answers (reviewer_id, run_id, id) WHERE undone_at IS NULL;
CREATE INDEX review_answers_example ON review_answers (example_id);
CREATE INDEX review_answers_run ON review_answers (run_id, example_id) WHERE undone_at IS NULL AND NOT adjudicated;

-- The disputed verdicts are counted as the others are, so that how many wait for people reads
-- a few rows on a run of millions.
CREATE OR REPLACE FUNCTION jury_verdict_counters(p_status text, p_outcome text, p_decided_by text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['verdicts.' || p_status, 'outcomes.' || coalesce(p_outcome, 'none')]
           || CASE WHEN p_decided_by = 'people' THEN ARRAY['verdicts.people'] ELSE ARRAY[]::text[] END
           || CASE WHEN p_decided_by = 'panel' AND (p_status <> 'agreed' OR p_outcome IN ('relabel', 'clarify'))
                   THEN ARRAY['verdicts.disputed'] ELSE ARRAY[]::text[] END
$$;

-- The verdicts decided before, counted once, in the slot no backend has (0). Writers of
-- verdicts wait meanwhile: one that committed after this count with the function it started
-- with would be counted by neither.
LOCK TABLE verdicts IN SHARE MODE;
INSERT INTO run_counts AS c (run_id, judge, counter, slot, n)
SELECT v.run_id, '', 'verdicts.disputed', 0, count(*)
FROM verdicts v
WHERE v.decided_by = 'panel' AND (v.status <> 'agreed' OR v.outcome IN ('relabel', 'clarify'))
GROUP BY v.run_id
ORDER BY v.run_id
ON CONFLICT (run_id, judge, counter, slot) DO UPDATE SET n = c.n + excluded.n;

-- The disputed verdicts' index (jury_disagreements reads it) now also holds the order the
-- queue is served in, so the next example is found at once among millions of agreed verdicts.
DROP INDEX verdicts_disputed;
CREATE INDEX verdicts_disputed ON verdicts (run_id, agreement, example_id)
    WHERE decided_by = 'panel' AND (status <> 'agreed' OR outcome IN ('relabel', 'clarify'));

-- Leases p_example to p_reviewer if fewer than p_holders people hold or answered it, counted
-- after the caller locked its verdict row (so whoever held that lock before has committed and
-- is counted). No row when it is taken.
CREATE OR REPLACE FUNCTION jury_review_take(
    p_example bigint, p_run bigint, p_reviewer bigint, p_lease interval, p_holders int, p_adjudicating boolean
) RETURNS TABLE (example_id bigint, lease_token uuid, leased_until timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM review_leases l
        WHERE l.example_id = p_example AND l.leased_until > now() AND l.adjudicating = p_adjudicating)
     + (SELECT count(*) FROM review_answers a
        WHERE a.example_id = p_example AND a.undone_at IS NULL AND a.adjudicated = p_adjudicating) >= p_holders THEN
        RETURN;
    END IF;
    RETURN QUERY
    INSERT INTO review_leases AS l (example_id, reviewer_id, run_id, leased_until, adjudicating)
    VALUES (p_example, p_reviewer, p_run, now() + p_lease, p_adjudicating)
    ON CONFLICT ON CONSTRAINT review_leases_pkey DO UPDATE
        SET lease_token = gen_random_uuid(), leased_until = EXCLUDED.leased_until, adjudicating = EXCLUDED.adjudicating
    RETURNING l.example_id, l.lease_token, l.leased_until;
END;
$$;

-- Hands p_reviewer an example of p_run under a lease until now() + p_lease: the one they hold
-- already, if any (a reloaded page shows the same example), else the first free one of the
-- queue they have neither skipped nor answered. No row when the queue has nothing for them.
--
-- To review (p_adjudicate false): the panel's disputed verdicts, the most split first, each
-- held or answered by at most p_per_item people. To adjudicate: the examples whose p_per_item
-- people answered and did not agree (never to one of them), one owner each.
--
-- Candidates are locked with SKIP LOCKED, so reviewers asking at once take different ones, and
-- are counted again once locked (jury_review_take), so a candidate others took since this
-- statement's snapshot is passed over, never given to one person too many.
CREATE OR REPLACE FUNCTION jury_review_claim(
    p_run bigint, p_reviewer bigint, p_lease interval, p_per_item int, p_adjudicate boolean
) RETURNS TABLE (example_id bigint, lease_token uuid, leased_until timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_candidate bigint;
BEGIN
    RETURN QUERY
    UPDATE review_leases l SET leased_until = now() + p_lease
    WHERE (l.example_id, l.reviewer_id) = (
        SELECT h.example_id, h.reviewer_id FROM review_leases h
        WHERE h.reviewer_id = p_reviewer AND h.run_id = p_run AND h.adjudicating = p_adjudicate
          AND h.leased_until > now()
        ORDER BY h.leased_until DESC LIMIT 1)
    RETURNING l.example_id, l.lease_token, l.leased_until;
    IF FOUND THEN
        RETURN;
    END IF;
    IF p_adjudicate THEN
        FOR v_candidate IN
            SELECT v.example_id FROM verdicts v
            WHERE v.example_id = ANY (ARRAY(
                    SELECT a.example_id FROM review_answers a
                    WHERE a.run_id = p_run AND a.undone_at IS NULL AND NOT a.adjudicated
                    GROUP BY a.example_id
                    HAVING count(*) >= p_per_item AND count(DISTINCT a.label) > 1 AND bool_and(a.reviewer_id <> p_reviewer)))
              AND v.decided_by = 'panel'
            ORDER BY v.example_id
            FOR UPDATE OF v SKIP LOCKED
        LOOP
            RETURN QUERY SELECT * FROM jury_review_take(v_candidate, p_run, p_reviewer, p_lease, 1, true);
            IF FOUND THEN
                RETURN;
            END IF;
        END LOOP;
        RETURN;
    END IF;
    FOR v_candidate IN
        SELECT v.example_id FROM verdicts v
        WHERE v.run_id = p_run AND v.decided_by = 'panel' AND (v.status <> 'agreed' OR v.outcome IN ('relabel', 'clarify'))
          AND NOT EXISTS (SELECT 1 FROM review_skips s WHERE s.reviewer_id = p_reviewer AND s.example_id = v.example_id)
          AND NOT EXISTS (SELECT 1 FROM review_answers a
                          WHERE a.example_id = v.example_id AND a.undone_at IS NULL
                            AND (a.reviewer_id = p_reviewer OR a.adjudicated))
          AND (SELECT count(*) FROM review_answers a WHERE a.example_id = v.example_id AND a.undone_at IS NULL)
            + (SELECT count(*) FROM review_leases l
               WHERE l.example_id = v.example_id AND l.leased_until > now() AND NOT l.adjudicating) < p_per_item
        ORDER BY v.agreement, v.example_id
        LIMIT 50
        FOR UPDATE OF v SKIP LOCKED
    LOOP
        RETURN QUERY SELECT * FROM jury_review_take(v_candidate, p_run, p_reviewer, p_lease, p_per_item, false);
        IF FOUND THEN
            RETURN;
        END IF;
    END LOOP;
END;
$$;

-- What the queue holds for a run: examples left, leased now, and answers given (a jury_ view:
-- jury_reader sees it; the reviewers' tables themselves it does not).
CREATE OR REPLACE VIEW jury_review_progress AS
SELECT r.name AS run,
       (SELECT coalesce(sum(c.n), 0)::bigint FROM run_counts c
        WHERE c.run_id = r.id AND c.judge = '' AND c.counter = 'verdicts.disputed') AS waiting,
       (SELECT count(*) FROM review_leases l WHERE l.run_id = r.id AND l.leased_until > now()) AS leased,
       (SELECT count(*) FROM review_answers a WHERE a.run_id = r.id AND a.undone_at IS NULL) AS answered
FROM runs r;

