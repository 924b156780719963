-- Worker drain: an operator asks a worker (POST /workers/{id}/drain, `eve workers drain ID`) to
-- stop claiming; the worker reads the flag with its heartbeat, finishes what it runs and exits.
-- Registering again (a restart) clears it.
ALTER TABLE eve.workers ADD COLUMN drain_requested_at timestamptz;

-- The API reads workers only through eve.workers_visible (0004): it shows the flag too.
CREATE OR REPLACE VIEW eve.workers_visible WITH (security_barrier = true) AS
SELECT w.id, w.worker_type, w.hostname, w.pid, w.version, w.slots, w.state,
       CASE WHEN r.org_id IS NOT NULL AND eve.can_see_org(r.org_id) THEN w.current_request_id END
           AS current_request_id,
       w.started_at, w.heartbeat_at, w.stopped_at, w.sandbox, w.disk_low,
       (SELECT count(*) FROM eve.orchestration_requests b
        WHERE b.claimed_by = w.id AND b.status IN ('claimed', 'processing')
          AND b.lease_expires_at IS NOT NULL) AS slots_busy,  -- in flight: the lease index (0003)
       w.drain_requested_at
FROM eve.workers w
LEFT JOIN eve.orchestration_requests r ON r.id = w.current_request_id;

-- The API's role (eve_api) may not write eve.workers: drain goes through this function,
-- which admits operators only (eve.is_operator() reads the caller's eve.user_id).
CREATE FUNCTION eve.api_worker_drain(p_id text)
    RETURNS TABLE (id text, state text, drain_requested_at timestamptz)
    LANGUAGE sql SECURITY DEFINER SET search_path = eve, pg_temp AS $$
    UPDATE eve.workers w SET drain_requested_at = coalesce(w.drain_requested_at, now())
    WHERE w.id = p_id AND eve.is_operator()
    RETURNING w.id, w.state, w.drain_requested_at
$$;
REVOKE ALL ON FUNCTION eve.api_worker_drain(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eve.api_worker_drain(text) TO eve_api;

-- Tenant policies that cost one lookup per query, not per row. `eve.can_see_org(org_id)` is a
-- SECURITY DEFINER function, so PostgreSQL cannot inline it and calls it (two lookups) for each
-- row it reads: counting a search over 100,000 requests took seconds. The same rule written with
-- sub-selects is evaluated once per statement (an InitPlan and a hashed SubPlan). Who sees what
-- does not change: an operator, or a member of the row's org — and (0004) a result or event
-- written as eve_api must belong to a request of the same org.
DROP POLICY org_isolation ON eve.orchestration_requests;
CREATE POLICY org_isolation ON eve.orchestration_requests FOR ALL TO eve_api
    USING ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()))
    WITH CHECK ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()));

-- Results and events keep 0004's WITH CHECK: a row written as eve_api must belong to a
-- request of the same org (only the per-row lookups change).
DROP POLICY org_isolation ON eve.orchestration_results;
CREATE POLICY org_isolation ON eve.orchestration_results FOR ALL TO eve_api
    USING ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()))
    WITH CHECK (((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids())) AND EXISTS (
        SELECT 1 FROM eve.orchestration_requests r
        WHERE r.id = orchestration_results.request_id AND r.org_id = orchestration_results.org_id));

DROP POLICY org_isolation ON eve.request_events;
CREATE POLICY org_isolation ON eve.request_events FOR ALL TO eve_api
    USING ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()))
    WITH CHECK (((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids())) AND EXISTS (
        SELECT 1 FROM eve.orchestration_requests r
        WHERE r.id = request_events.request_id AND r.org_id = request_events.org_id));

