-- 0008: the API announces its live SSE subscribers itself. Since 0007 the API's login
-- role is a member of eve_api only (no service role), and the hub's presence rows
-- (eve.event_listeners, 0003) are the one table it writes outside a tenant's identity.
GRANT INSERT, UPDATE, DELETE ON eve.event_listeners TO eve_api;
