-- What a database made by the migrations before the baseline (001 to 046) needs before it is
-- taken as the baseline. `jury migrate` runs this, then the baseline's functions, triggers and
-- views (every file but 1_tables.sql, all CREATE OR REPLACE), then compares the database's
-- catalog with the baseline's; in one transaction, which it rolls back if they differ.

-- Jobs marked done, from before votes replaced their jobs (037): they no longer counted (their
-- votes do), and a purge would have removed them.
DELETE FROM jobs WHERE state = 'done';
ALTER TABLE jobs DROP CONSTRAINT jobs_state_check,
    ADD CONSTRAINT jobs_state_check CHECK (state IN ('waiting', 'pending', 'running', 'failed', 'cancelled'));

-- The signature of jury_record_votes before 043, kept for workers of that time.
DROP FUNCTION IF EXISTS jury_record_votes(
    text, bigint[], int[], text[], text[], int[], bigint[], bigint[], bigint[], text[], text[], double precision[]);
