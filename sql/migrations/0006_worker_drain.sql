-- Worker drain: an operator asks a worker (POST /workers/{id}/drain, `eve workers drain ID`) to
-- stop claiming; the worker reads the flag with its heartbeat, finishes what it runs and exits.
-- Registering again (a restart) clears it.
ALTER TABLE eve.workers ADD COLUMN drain_requested_at timestamptz;

-- Tenant policies that cost one lookup per query, not per row. `eve.can_see_org(org_id)` is a
-- SECURITY DEFINER function, so PostgreSQL cannot inline it and calls it (two lookups) for each
-- row it reads: counting a search over 100,000 requests took seconds. The same rule written with
-- sub-selects is evaluated once per statement (an InitPlan and a hashed SubPlan). Who sees what
-- does not change: an operator, or a member of the row's org.
DROP POLICY org_isolation ON eve.orchestration_requests;
CREATE POLICY org_isolation ON eve.orchestration_requests FOR ALL TO eve_api
    USING ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()))
    WITH CHECK ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()));

DROP POLICY org_isolation ON eve.orchestration_results;
CREATE POLICY org_isolation ON eve.orchestration_results FOR ALL TO eve_api
    USING ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()))
    WITH CHECK ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()));

DROP POLICY org_isolation ON eve.request_events;
CREATE POLICY org_isolation ON eve.request_events FOR ALL TO eve_api
    USING ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()))
    WITH CHECK ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()));

