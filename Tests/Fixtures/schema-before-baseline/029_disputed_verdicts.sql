-- jury_disagreements reads the disputed verdicts through an index of their own.
--
-- The view keeps the panel's verdicts that are not agreed, or that people marked to relabel
-- or clarify. No index matched that condition, so reading its first rows scanned every
-- verdict: 165-268 ms at 2.5M agreed verdicts, past the 200 ms a view must answer in. This
-- partial index holds only the disputed ones (its predicate is the view's), so the view
-- answers in under a millisecond when few are disputed, and costs nothing to keep for the
-- agreed ones.

CREATE INDEX verdicts_disputed ON verdicts (run_id, example_id)
    WHERE decided_by = 'panel' AND (status <> 'agreed' OR outcome IN ('relabel', 'clarify'));
