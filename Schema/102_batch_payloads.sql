-- A batch's examples, a page at a time: the worker that sends a batch of 50,000 requests reads
-- their payloads in pages and writes each page's requests to disk, instead of holding every
-- payload, every rendered prompt and the whole upload in memory at once.

-- The payloads of p_jobs that the batch p_batch still holds (running, leased to it): the rest
-- were taken back, and are not sent.
CREATE OR REPLACE FUNCTION jury_batch_payloads(p_batch bigint, p_jobs bigint[])
RETURNS TABLE (job_id bigint, external_id text, payload jsonb)
LANGUAGE sql STABLE AS $$
    SELECT j.id, x.external_id, x.payload
    FROM jobs j JOIN examples x ON x.id = j.example_id
    WHERE j.id = ANY (p_jobs) AND j.state = 'running' AND j.lease_owner = 'batch:' || p_batch
    ORDER BY j.id
$$;

INSERT INTO jury_privileges (role, kind, name) VALUES ('jury_worker', 'function', 'jury_batch_payloads')
ON CONFLICT DO NOTHING;
