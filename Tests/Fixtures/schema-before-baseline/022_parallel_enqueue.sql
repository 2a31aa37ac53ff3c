-- Enqueue chunks load side by side, on several connections: one server process inserting was
-- what bounded a load of millions of lines, with the other cores idle.
--
-- Adding work to a run took the run's row FOR NO KEY UPDATE, which made every adder wait for
-- the one before it. Adders now share the row (FOR SHARE). The finisher's FOR NO KEY UPDATE
-- still conflicts with that share: it skips a run while any adder holds it, so a run still
-- cannot end under a transaction adding work to it (016).
--
-- Reopening a done run updates its row, which a share held by another adder would block; so
-- an adder that finds the run done takes the exclusive lock from the start. Should a run end
-- between that look and the share (the finisher committing just then), two adders reopening
-- it at once deadlock; the server stops one, and the loader tries that chunk again.
CREATE OR REPLACE FUNCTION jury_lock_run_for_work(p_run bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM runs WHERE id = p_run AND state = 'done') THEN
        PERFORM 1 FROM runs WHERE id = p_run FOR NO KEY UPDATE;
    ELSE
        PERFORM 1 FROM runs WHERE id = p_run FOR SHARE;
    END IF;
END;
$$;
