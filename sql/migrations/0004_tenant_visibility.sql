-- What the API's role may see of the platform tables (issue #14).
--
-- eve.workers and eve.worker_logs were granted to eve_api whole, so any org's member
-- read another org's running request id (workers.current_request_id) and every worker's
-- log lines (which name requests of every org). From here on:
--
--   * eve_api reads workers only through eve.workers_visible, which shows a running
--     request's id when the caller may see that request's org (operators: always);
--     slots_busy is counted there too, as the owner, so it stays the worker's real load.
--   * eve.worker_logs has row-level security: operators only.
--
-- The view is not security_invoker on purpose: it reads orchestration_requests as its
-- owner (the migrating role, which bypasses RLS like the definer functions in 0001) and
-- decides per row with eve.can_see_org(), which reads eve.user_id from the transaction.

CREATE VIEW eve.workers_visible WITH (security_barrier = true) AS
SELECT w.id, w.worker_type, w.hostname, w.pid, w.version, w.slots, w.state,
       CASE WHEN r.org_id IS NOT NULL AND eve.can_see_org(r.org_id) THEN w.current_request_id END
           AS current_request_id,
       w.started_at, w.heartbeat_at, w.stopped_at, w.sandbox, w.disk_low,
       (SELECT count(*) FROM eve.orchestration_requests b
        WHERE b.claimed_by = w.id AND b.status IN ('claimed', 'processing')) AS slots_busy
FROM eve.workers w
LEFT JOIN eve.orchestration_requests r ON r.id = w.current_request_id;

REVOKE ALL ON eve.workers FROM eve_api;
GRANT SELECT ON eve.workers_visible TO eve_api;
GRANT SELECT ON eve.workers_visible TO service_role;

ALTER TABLE eve.worker_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.worker_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY operators_only ON eve.worker_logs FOR SELECT TO eve_api
    USING (eve.is_operator());
CREATE POLICY service_bypass ON eve.worker_logs FOR ALL TO service_role USING (true);

-- A result or event written as eve_api must belong to a request of the same org that the
-- caller can see: the old WITH CHECK looked only at the row's own org_id, so a member
-- could attach a row labelled with its own org to another org's request.
DROP POLICY org_isolation ON eve.orchestration_results;
CREATE POLICY org_isolation ON eve.orchestration_results FOR ALL TO eve_api
    USING (eve.can_see_org(org_id))
    WITH CHECK (eve.can_see_org(org_id) AND EXISTS (
        SELECT 1 FROM eve.orchestration_requests r
        WHERE r.id = orchestration_results.request_id AND r.org_id = orchestration_results.org_id));

DROP POLICY org_isolation ON eve.request_events;
CREATE POLICY org_isolation ON eve.request_events FOR ALL TO eve_api
    USING (eve.can_see_org(org_id))
    WITH CHECK (eve.can_see_org(org_id) AND EXISTS (
        SELECT 1 FROM eve.orchestration_requests r
        WHERE r.id = request_events.request_id AND r.org_id = request_events.org_id));
