-- eve-horizon schema, version 3: statements on one request planned on the primary key;
-- NOTIFY only what a listener acts on.
--
-- PostgreSQL 15 compatible, like 0001.

-- ---------------------------------------------------------------------------
-- The reaper's index, keyed on the lease instead of the status
-- ---------------------------------------------------------------------------
--
-- 0001 made it partial on `status IN ('claimed', 'processing')`. That predicate is implied
-- by the filter of every statement that touches one in-flight request (finish, renew,
-- requeue, mark_processing, cancel flag, reap), so the planner could pick a scan of the
-- whole index filtered by id over the primary-key lookup, and did whenever statistics
-- showed few requests in flight (after a bulk insert): a cost that grows with the
-- number of running requests, on every finish. A request holds a lease exactly while it
-- is claimed or processing (claim sets it; finish, requeue and reap clear it), so the
-- same rows are indexed; the reaper's `lease_expires_at < now()` still implies the new
-- predicate, the one-request statements no longer do, and they are left with the pkey.
DROP INDEX eve.idx_requests_lease;
CREATE INDEX idx_requests_lease
    ON eve.orchestration_requests (lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
