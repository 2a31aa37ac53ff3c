-- Verdicts carry no foreign keys, as votes have not since 023: each key's check was a lookup
-- and a row lock per verdict, on the reducer's hottest insert. In `jury bench`,
-- jury_record_verdicts took 55 µs of PostgreSQL's time per example with them and 38-45 without.
--
-- Nothing needs them to hold on insert:
-- - jury_record_verdicts writes the verdicts of examples its transaction claimed FOR UPDATE
--   (jury_claim_ready_examples), so they cannot go before it commits; it checks the run;
-- - jury_replace_verdicts (jury reduce, import-labels) locked nothing: it now takes the
--   examples FOR KEY SHARE, as the key's check did, and writes only those of the run that are
--   still there, where the key made the whole reduction fail.
-- What the keys' ON DELETE CASCADE did, the examples' delete trigger now does; a run's examples
-- go with it (035), so its verdicts go too. verdict_history keeps its keys: it is written only
-- when a reduction replaces verdicts.
ALTER TABLE verdicts DROP CONSTRAINT verdicts_example_id_fkey, DROP CONSTRAINT verdicts_run_id_fkey;

-- As in 037, and the verdicts too. A purge deletes a chunk's verdicts itself first (020), while
-- their batch can still be counted out; here they go with a whole run, whose counts went with it.
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

-- As in 009, for the examples of the run that are still there, locked until the caller commits.
CREATE OR REPLACE FUNCTION jury_replace_verdicts(
    p_run bigint, p_examples bigint[], p_labels text[], p_statuses text[], p_agreements float8[], p_votes int[],
    p_rules text[], p_rule_params jsonb[], p_decided_by text[], p_outcomes text[], p_early boolean[]
) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_present bigint[];
    v_written int;
BEGIN
    SELECT array_agg(e.id) INTO v_present
    FROM (SELECT e.id FROM examples e WHERE e.id = ANY (p_examples) AND e.run_id = p_run ORDER BY e.id FOR KEY SHARE) e;
    WITH old AS (
        DELETE FROM verdicts v WHERE v.run_id = p_run AND v.example_id = ANY (v_present)
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
         AS n (example_id, label, status, agreement, votes, rule, rule_params, decided_by, outcome, early)
    WHERE n.example_id = ANY (v_present);
    GET DIAGNOSTICS v_written = ROW_COUNT;
    RETURN v_written;
END;
$$;
