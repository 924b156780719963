-- Performance (#13): the fair-sequence trigger (0011) must read the lane's head from the
-- claim's index, whatever the statistics said when its plan was cached.
--
-- assign_fair_seq() runs for every inserted request. Its head lookup (the smallest
-- fair_seq a claim would take now) is ordered exactly as idx_requests_fair, so one index
-- probe answers it. But PL/pgSQL caches the plan per connection, and a plan made while
-- the statistics said the table was (nearly) empty — a fresh install, then a burst of
-- requests before autovacuum's next analyze — chose idx_requests_org_pending (same
-- size, org_id first) and sorted: it read every pending request of the lane, on every
-- insert. In the API benchmark that was 2.2 ms of a 3.3 ms INSERT after 6,000 POSTs, and
-- growing with the backlog. With sorting disabled for this function only, the planner
-- has one sensible path left for each of its two lookups (both are index-ordered).

ALTER FUNCTION eve.assign_fair_seq() SET enable_sort = off;
