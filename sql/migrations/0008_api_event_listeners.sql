-- 0008: the API announces its live SSE subscribers itself, and reads no events past RLS. Since 0007 the API's login
-- role is a member of eve_api only (no service role), and the hub's presence rows
-- (eve.event_listeners, 0003) are the one table it writes outside a tenant's identity.
GRANT INSERT, UPDATE, DELETE ON eve.event_listeners TO eve_api;

-- 0007's eve.api_events_after and eve.api_events_by_ids returned every org's events to
-- the API role, past row-level security. The SSE hub reads events under each caller's
-- identity instead, so nothing calls them: drop them rather than leave them callable.
DROP FUNCTION eve.api_events_after(bigint, integer);
DROP FUNCTION eve.api_events_by_ids(bigint[]);
