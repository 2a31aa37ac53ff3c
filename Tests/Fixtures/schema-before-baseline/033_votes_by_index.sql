-- The two functions that read votes example by example always read them through the index.
--
-- plpgsql keeps a plan per connection. Made while `votes` was empty or nearly so (a new
-- database, or a run's first seconds), the plan read votes with a sequential scan, and it kept
-- doing so for every example as the table grew, until an ANALYZE of votes made it plan again:
-- in `jury bench` about one run in three, where 709 statements scanned all of votes (settle's
-- early-decision check and the reducer's claim), the worker with the reducer made 6,400-8,800
-- votes/s instead of 11,000-13,900. Both functions address every row by key, so forbidding
-- sequential scans inside them costs nothing when the index is the right choice, which it
-- always is here. CREATE OR REPLACE drops a function's SET clauses: a migration that restates
-- either function must say SET enable_seqscan = off again.

ALTER FUNCTION jury_settle_examples(bigint[], boolean) SET enable_seqscan = off;
ALTER FUNCTION jury_claim_ready_examples(bigint, int) SET enable_seqscan = off;
