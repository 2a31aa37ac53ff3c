-- `jury run update` changes a live run's config (its judges' models, parameters, limits and
-- prices; its budget and retry policy) without touching a verdict. Each config it replaces is
-- kept here, with when and by whom, so that every vote can be traced to the settings it was
-- cast under. The taxonomy, the prompt, the rule and the panel's names never change in place
-- (the command refuses), so the votes' meaning does not either.
CREATE TABLE run_config_history (
    id          bigserial PRIMARY KEY,
    run_id      bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    config      jsonb NOT NULL,
    replaced_at timestamptz NOT NULL DEFAULT now(),
    replaced_by text NOT NULL DEFAULT current_user
);
CREATE INDEX run_config_history_by_run ON run_config_history (run_id, replaced_at);

-- Each run's replaced configs, oldest first.
CREATE VIEW jury_run_config_history AS
SELECT r.name AS run, h.replaced_at, h.replaced_by, h.config
FROM run_config_history h
JOIN runs r ON r.id = h.run_id
ORDER BY r.name, h.replaced_at, h.id;
