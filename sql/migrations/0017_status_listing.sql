-- Listings filtered by a rare status (#13): GET /requests?status=cancelled, the console's
-- waiting, failed and cancelled filters.
--
-- Newest-first listings walk idx_requests_created and filter by status. For a status that
-- most of the history has, the page fills at once; for a rare one the walk reads the whole
-- history: with 1,000,000 requests, a page of cancelled requests took 188 ms and its capped
-- count 191 ms (the console runs both). This index holds only the requests that ended
-- badly or wait, so the happy path (pending -> claimed -> completed) never writes to it, and
-- a filter on one of these statuses reads its newest rows in order. In flight and pending
-- requests are few or recent (the lease and pending indexes, or the head of the history).

CREATE INDEX idx_requests_rare_status
    ON eve.orchestration_requests (status, created_at DESC, id DESC)
    WHERE status IN ('waiting', 'failed', 'cancelled');
