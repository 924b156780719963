-- Named queries of the HTTP API. They run as eve_api with eve.user_id set, so row-level
-- security decides what exists; none of them filters by tenant itself.

-- name: api_requests_page
-- Newest first with keyset pagination on (created_at, id); optional filters.
SELECT r.id, r.created_at, r.org_id, r.user_id, r.worker_type, r.status, left(r.prompt, 200) AS prompt,
       r.config, r.priority, r.attempts, r.max_attempts, r.claimed_by, r.claimed_at, r.run_after,
       r.started_at, r.finished_at, r.lease_expires_at, r.cancel_requested_at, r.replay_of, r.parent_id,
       r.blocked_by, r.last_error, r.schedule_id,
       res.status AS result_status, res.summary AS result_summary, res.duration_ms AS result_duration_ms,
       res.tokens_used AS result_tokens_used, res.cost_usd AS result_cost_usd, res.error AS result_error,
       res.error_code AS result_error_code
FROM eve.orchestration_requests r
LEFT JOIN eve.orchestration_results res ON res.request_id = r.id
WHERE (%(status)s::text IS NULL OR r.status = %(status)s::text)
  AND (%(worker_type)s::text IS NULL OR r.worker_type = %(worker_type)s::text)
  AND (%(org_id)s::uuid IS NULL OR r.org_id = %(org_id)s::uuid)
  AND (%(cursor_at)s::timestamptz IS NULL OR (r.created_at, r.id) < (%(cursor_at)s::timestamptz, %(cursor_id)s::uuid))
ORDER BY r.created_at DESC, r.id DESC
LIMIT %(limit)s;

-- name: api_request_detail
SELECT r.*,
       res.status AS result_status, res.summary AS result_summary, res.duration_ms AS result_duration_ms,
       res.tokens_used AS result_tokens_used, res.cost_usd AS result_cost_usd, res.error AS result_error,
       res.error_code AS result_error_code
FROM eve.orchestration_requests r
LEFT JOIN eve.orchestration_results res ON res.request_id = r.id
WHERE r.id = %(id)s;

-- name: api_org_by_slug
SELECT id, slug FROM eve.organizations WHERE slug = %(slug)s;

-- name: api_workers
-- Through eve.workers_visible (0004): another org's running request id reads as NULL.
SELECT w.*, extract(epoch FROM now() - w.heartbeat_at) AS heartbeat_age_s
FROM eve.workers_visible w
WHERE w.state <> 'stopped' OR w.stopped_at > now() - interval '1 hour'
ORDER BY w.worker_type, w.id;

-- name: api_worker_exists
SELECT 1 FROM eve.workers_visible WHERE id = %(id)s;

-- name: api_worker_logs
-- Row-level security (0004) returns rows to operators only.
SELECT id, at, level, message, data FROM eve.worker_logs
WHERE worker_id = %(worker_id)s AND id > %(after)s
ORDER BY id
LIMIT %(limit)s;

-- name: api_visible_events_by_ids
-- The SSE hub fetches the rows a burst of notifications named, once per connected caller
-- and under that caller's identity: row-level security decides who gets which.
-- (Never through a SECURITY DEFINER function or the service role: that would undo it.)
SELECT e.id, e.request_id, e.org_id, e.at, e.kind, e.data, r.worker_type
FROM eve.request_events e
JOIN eve.orchestration_requests r ON r.id = e.request_id
WHERE e.id = ANY(%(ids)s::bigint[])
ORDER BY e.id;

-- name: api_events_after
-- Backfill for one subscriber, under its own identity (RLS): resume and catch-up.
SELECT e.id, e.request_id, e.org_id, e.at, e.kind, e.data, r.worker_type
FROM eve.request_events e
JOIN eve.orchestration_requests r ON r.id = e.request_id
WHERE e.id > %(after)s
  AND (%(request_id)s::uuid IS NULL OR e.request_id = %(request_id)s::uuid)
  AND (%(worker_type)s::text IS NULL OR r.worker_type = %(worker_type)s::text)
  AND (%(org_id)s::uuid IS NULL OR e.org_id = %(org_id)s::uuid)
ORDER BY e.id
LIMIT %(limit)s;

-- name: api_last_event_id
SELECT eve.api_last_event_id() AS id;

-- name: api_queue_depth
-- The whole platform's queue depth (see queue_depth), for /queue, /status and /metrics.
SELECT * FROM eve.api_queue_depth();

-- name: api_workers_per_type
SELECT t.id AS worker_type,
       count(w.id) FILTER (WHERE w.state <> 'stopped'
                           AND w.heartbeat_at > now() - make_interval(secs => %(lease_seconds)s)) AS alive,
       count(w.id) FILTER (WHERE w.state <> 'stopped') AS expected,
       count(w.id) FILTER (WHERE w.state <> 'stopped' AND w.sandbox = 'none') AS unsandboxed,
       count(w.id) FILTER (WHERE w.state <> 'stopped' AND w.disk_low) AS disk_low
FROM eve.worker_types t
LEFT JOIN eve.workers_visible w ON w.worker_type = t.id
GROUP BY t.id
ORDER BY t.id;

-- name: api_event_listener_announce
-- This API process has live SSE subscribers: request eve_events notifications until
-- expires_at (refreshed while it has any). Long-expired rows of dead processes go too.
WITH gone AS (
    DELETE FROM eve.event_listeners WHERE expires_at < now() - interval '1 hour'
)
INSERT INTO eve.event_listeners (id, expires_at)
VALUES (%(id)s, now() + make_interval(secs => %(ttl_seconds)s))
ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at;

-- name: api_event_listener_withdraw
DELETE FROM eve.event_listeners WHERE id = %(id)s;

-- name: api_snapshot_xmax
-- Transactions with an id below this had started when the announcement committed.
SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax;

-- name: api_snapshot_xmin
SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin;
