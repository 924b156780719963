-- The API without service_role: what it reads across organisations, as definer functions.
--
-- `eve up` (and the deployment docs) give the API a login role that is a member of
-- eve_api only: no BYPASSRLS, no service_role, so a leaked API DSN reaches no more than
-- RLS lets a caller see. Three things the API does are not one caller's view:
--   * the SSE hub fetches the events a burst of notifications named, for all orgs, and
--     hands each row only to the subscribers allowed to see it;
--   * /queue, /status and /metrics report the queue depth of the whole platform.
-- These functions return exactly that, read-only, and only eve_api may call them.
-- Like eve.lookup_api_key they rely on their owner (the migrator: a superuser or a role
-- with BYPASSRLS) not being subject to the forced row-level security.

CREATE FUNCTION eve.api_events_by_ids(p_ids bigint[])
    RETURNS TABLE (id bigint, request_id uuid, org_id uuid, at timestamptz, kind text, data jsonb,
                   worker_type text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, eve
    AS $$
        SELECT e.id, e.request_id, e.org_id, e.at, e.kind, e.data, r.worker_type
        FROM eve.request_events e
        JOIN eve.orchestration_requests r ON r.id = e.request_id
        WHERE e.id = ANY(p_ids)
        ORDER BY e.id
    $$;

CREATE FUNCTION eve.api_events_after(p_after bigint, p_limit integer)
    RETURNS TABLE (id bigint, request_id uuid, org_id uuid, at timestamptz, kind text, data jsonb,
                   worker_type text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, eve
    AS $$
        SELECT e.id, e.request_id, e.org_id, e.at, e.kind, e.data, r.worker_type
        FROM eve.request_events e
        JOIN eve.orchestration_requests r ON r.id = e.request_id
        WHERE e.id > p_after
        ORDER BY e.id
        LIMIT p_limit
    $$;

CREATE FUNCTION eve.api_last_event_id() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, eve
    AS $$ SELECT coalesce(max(id), 0) FROM eve.request_events $$;

CREATE FUNCTION eve.api_queue_depth()
    RETURNS TABLE (worker_type text, pending bigint, oldest_pending_at timestamptz, running bigint,
                   completed_last_hour bigint, failed_last_hour bigint)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, eve
    AS $$
        SELECT t.id,
               coalesce(p.pending, 0),
               p.oldest_pending_at,
               coalesce(f.in_flight, 0),
               coalesce(h.completed, 0),
               coalesce(h.failed, 0)
        FROM eve.worker_types t
        LEFT JOIN LATERAL (
            SELECT count(*) AS pending, min(created_at) AS oldest_pending_at
            FROM eve.orchestration_requests r
            WHERE r.worker_type = t.id AND r.status = 'pending'
        ) p ON true
        LEFT JOIN LATERAL (
            SELECT count(*) AS in_flight
            FROM eve.orchestration_requests r
            WHERE r.worker_type = t.id AND r.status IN ('claimed', 'processing')
        ) f ON true
        LEFT JOIN LATERAL (
            SELECT count(*) FILTER (WHERE r.status = 'completed') AS completed,
                   count(*) FILTER (WHERE r.status IN ('failed', 'cancelled')) AS failed
            FROM eve.orchestration_requests r
            WHERE r.worker_type = t.id AND r.finished_at IS NOT NULL
              AND r.finished_at > now() - interval '1 hour'
        ) h ON true
        ORDER BY t.id
    $$;

REVOKE ALL ON FUNCTION eve.api_events_by_ids(bigint[]), eve.api_events_after(bigint, integer),
    eve.api_last_event_id(), eve.api_queue_depth() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eve.api_events_by_ids(bigint[]), eve.api_events_after(bigint, integer),
    eve.api_last_event_id(), eve.api_queue_depth() TO eve_api, service_role;
