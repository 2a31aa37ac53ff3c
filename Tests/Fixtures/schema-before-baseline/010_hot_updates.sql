-- Fewer writes per vote: room on each page of examples for its counters to change in place.
--
-- Every vote moves its example's counters (jobs_open, and jobs_waiting or jobs_cancelled). No
-- index covers them, so PostgreSQL can update the row in place (a HOT update: no new index
-- entries) whenever the page has room for the new version. At the default fillfactor of 100 an
-- enqueued page is full, and each counter update wrote a new entry in all four of the
-- examples' indexes. Pages written from now on keep 30% free; vacuum keeps them usable.
ALTER TABLE examples SET (fillfactor = 70);

-- The queue's tables change fast: vacuum them after 5% of their rows changed (the default is
-- 20%), so dead versions are cleared before they pile up on a run of millions.
ALTER TABLE examples SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05);
