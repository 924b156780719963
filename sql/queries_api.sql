-- Named queries of the HTTP API. They run as eve_api with eve.user_id set, so row-level
-- security decides what exists; none of them filters by tenant itself.

-- name: api_requests_page
-- The search behind GET /requests and the console: newest first, keyset pagination on
-- (created_at, id); status (any of), type, org, created since/until, and text (in the
-- prompt, or the start of the id). q_like is an escaped LIKE pattern; id_lo..id_hi is the
-- range of ids that start with q, when q looks like one (the primary key serves it). Text in
-- prompts is matched by reading them: under row-level security PostgreSQL may not use an
-- index for ILIKE (not a leakproof operator), so a trigram index would not help here.
SELECT r.id, r.created_at, r.org_id, o.slug AS org_slug, r.user_id, r.worker_type, r.status,
       left(r.prompt, 200) AS prompt,
       r.config, r.priority, r.attempts, r.max_attempts, r.claimed_by, r.claimed_at, r.run_after,
       r.started_at, r.finished_at, r.lease_expires_at, r.cancel_requested_at, r.replay_of, r.parent_id,
       r.blocked_by, r.last_error, r.schedule_id,
       res.status AS result_status, res.summary AS result_summary, res.duration_ms AS result_duration_ms,
       res.tokens_used AS result_tokens_used, res.cost_usd AS result_cost_usd, res.error AS result_error,
       res.error_code AS result_error_code
FROM eve.orchestration_requests r
LEFT JOIN eve.orchestration_results res ON res.request_id = r.id
LEFT JOIN eve.organizations o ON o.id = r.org_id
WHERE (%(statuses)s::text[] IS NULL OR r.status = ANY(%(statuses)s::text[]))
  AND (%(worker_type)s::text IS NULL OR r.worker_type = %(worker_type)s::text)
  AND (%(org_id)s::uuid IS NULL OR r.org_id = %(org_id)s::uuid)
  AND (%(since)s::timestamptz IS NULL OR r.created_at >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR r.created_at < %(until)s::timestamptz)
  AND (%(q_like)s::text IS NULL OR r.prompt ILIKE %(q_like)s::text
       OR (%(id_lo)s::uuid IS NOT NULL AND r.id BETWEEN %(id_lo)s::uuid AND %(id_hi)s::uuid))
  AND (%(cursor_at)s::timestamptz IS NULL OR (r.created_at, r.id) < (%(cursor_at)s::timestamptz, %(cursor_id)s::uuid))
ORDER BY r.created_at DESC, r.id DESC
LIMIT %(limit)s;

-- name: api_requests_page_oldest
-- The same search, oldest first (sort=oldest).
SELECT r.id, r.created_at, r.org_id, o.slug AS org_slug, r.user_id, r.worker_type, r.status,
       left(r.prompt, 200) AS prompt,
       r.config, r.priority, r.attempts, r.max_attempts, r.claimed_by, r.claimed_at, r.run_after,
       r.started_at, r.finished_at, r.lease_expires_at, r.cancel_requested_at, r.replay_of, r.parent_id,
       r.blocked_by, r.last_error,
       res.status AS result_status, res.summary AS result_summary, res.duration_ms AS result_duration_ms,
       res.tokens_used AS result_tokens_used, res.cost_usd AS result_cost_usd, res.error AS result_error,
       res.error_code AS result_error_code
FROM eve.orchestration_requests r
LEFT JOIN eve.orchestration_results res ON res.request_id = r.id
LEFT JOIN eve.organizations o ON o.id = r.org_id
WHERE (%(statuses)s::text[] IS NULL OR r.status = ANY(%(statuses)s::text[]))
  AND (%(worker_type)s::text IS NULL OR r.worker_type = %(worker_type)s::text)
  AND (%(org_id)s::uuid IS NULL OR r.org_id = %(org_id)s::uuid)
  AND (%(since)s::timestamptz IS NULL OR r.created_at >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR r.created_at < %(until)s::timestamptz)
  AND (%(q_like)s::text IS NULL OR r.prompt ILIKE %(q_like)s::text
       OR (%(id_lo)s::uuid IS NOT NULL AND r.id BETWEEN %(id_lo)s::uuid AND %(id_hi)s::uuid))
  AND (%(cursor_at)s::timestamptz IS NULL OR (r.created_at, r.id) > (%(cursor_at)s::timestamptz, %(cursor_id)s::uuid))
ORDER BY r.created_at, r.id
LIMIT %(limit)s;

-- name: api_requests_count
-- How many requests the search matches, counted up to %(cap)s (the console's "N of TOTAL", or
-- "N of 10,000+"): an exact count reads every match, which over a long history cost more
-- than the page itself. GET /requests skips it when the first page already holds them all.
SELECT count(*) AS total
FROM (
    SELECT 1
    FROM eve.orchestration_requests r
    WHERE (%(statuses)s::text[] IS NULL OR r.status = ANY(%(statuses)s::text[]))
      AND (%(worker_type)s::text IS NULL OR r.worker_type = %(worker_type)s::text)
      AND (%(org_id)s::uuid IS NULL OR r.org_id = %(org_id)s::uuid)
      AND (%(since)s::timestamptz IS NULL OR r.created_at >= %(since)s::timestamptz)
      AND (%(until)s::timestamptz IS NULL OR r.created_at < %(until)s::timestamptz)
      AND (%(q_like)s::text IS NULL OR r.prompt ILIKE %(q_like)s::text
           OR (%(id_lo)s::uuid IS NOT NULL AND r.id BETWEEN %(id_lo)s::uuid AND %(id_hi)s::uuid))
    LIMIT %(cap)s
) AS m;

-- name: api_request_detail
SELECT r.*, o.slug AS org_slug,
       res.status AS result_status, res.summary AS result_summary, res.duration_ms AS result_duration_ms,
       res.tokens_used AS result_tokens_used, res.cost_usd AS result_cost_usd, res.error AS result_error,
       res.error_code AS result_error_code
FROM eve.orchestration_requests r
LEFT JOIN eve.orchestration_results res ON res.request_id = r.id
LEFT JOIN eve.organizations o ON o.id = r.org_id
WHERE r.id = %(id)s;

-- name: api_org_by_slug
SELECT id, slug FROM eve.organizations WHERE slug = %(slug)s;

-- name: api_workers
-- Busy/idle and the current request come from the claims (the queue's truth, now), not from
-- the worker's last heartbeat row, which lags by up to a heartbeat; draining and stopped do.
-- Through eve.workers_visible (0004, 0006): slots_busy counts every org's claims; the
-- current request is one the caller may see (row-level security on the claims), else NULL.
SELECT w.id, w.worker_type, w.hostname, w.pid, w.version, w.slots, w.started_at, w.heartbeat_at, w.stopped_at,
       w.drain_requested_at, w.sandbox, w.network, w.limits, w.disk_low,
       extract(epoch FROM now() - w.heartbeat_at) AS heartbeat_age_s,
       CASE WHEN w.state = 'stopped' THEN 0 ELSE w.slots_busy END AS slots_busy,
       c.current_request_id,
       CASE WHEN w.state IN ('stopped', 'draining') THEN w.state
            WHEN w.drain_requested_at IS NOT NULL THEN 'draining'
            WHEN w.slots_busy > 0 THEN 'busy'
            ELSE 'idle' END AS state
FROM eve.workers_visible w
LEFT JOIN LATERAL (
    SELECT r.id AS current_request_id
    FROM eve.orchestration_requests r
    WHERE r.claimed_by = w.id AND r.status IN ('claimed', 'processing')
      AND r.lease_expires_at IS NOT NULL  -- every in-flight row holds one: idx_requests_lease serves this
    ORDER BY r.claimed_at
    LIMIT 1
) c ON w.state <> 'stopped'
WHERE w.state <> 'stopped' OR w.stopped_at > now() - interval '1 hour'
ORDER BY w.worker_type, w.id;

-- name: api_worker_drain
-- Through a definer function (0006): the API's role may not write eve.workers, and the
-- function itself admits operators only.
SELECT * FROM eve.api_worker_drain(%(id)s);

-- name: api_stats
-- What finished in the window, in all, per worker type and per org: counts by outcome,
-- p50/p95 wall time (start to finish), cost and tokens. Under RLS: a member sees its orgs.
WITH f AS (
    SELECT r.worker_type, r.org_id, r.status,
           extract(epoch FROM r.finished_at - r.started_at) * 1000 AS ms,
           res.cost_usd, res.tokens_used
    FROM eve.orchestration_requests r
    LEFT JOIN eve.orchestration_results res ON res.request_id = r.id
    WHERE r.finished_at > now() - make_interval(secs => %(window_s)s)
      AND (%(worker_type)s::text IS NULL OR r.worker_type = %(worker_type)s::text)
      AND (%(org_id)s::uuid IS NULL OR r.org_id = %(org_id)s::uuid)
), g AS (
    SELECT GROUPING(f.worker_type) AS by_type, GROUPING(f.org_id) AS by_org, f.worker_type, f.org_id,
           count(*) FILTER (WHERE f.status = 'completed') AS completed,
           count(*) FILTER (WHERE f.status = 'failed') AS failed,
           count(*) FILTER (WHERE f.status = 'cancelled') AS cancelled,
           count(*) AS finished,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY f.ms) AS p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY f.ms) AS p95_ms,
           sum(f.cost_usd) AS cost_usd, sum(f.tokens_used) AS tokens
    FROM f
    GROUP BY GROUPING SETS ((), (f.worker_type), (f.org_id))
)
SELECT g.*, o.slug AS org_slug
FROM g LEFT JOIN eve.organizations o ON o.id = g.org_id
ORDER BY g.by_type DESC, g.by_org DESC, g.worker_type, o.slug;

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

-- name: request_token_lookup
SELECT * FROM eve.lookup_request_token(%(prefix)s);

-- name: idempotency_expire
-- A key past its TTL is as good as unused: drop this org's stale row for it first.
DELETE FROM eve.idempotency_keys
WHERE org_id = %(org_id)s AND key = %(key)s AND created_at < now() - make_interval(secs => %(ttl_s)s);

-- name: idempotency_find
-- The row of a key another transaction already committed (the INSERT below waited for it).
SELECT route, body_hash, status, response FROM eve.idempotency_keys
WHERE org_id = %(org_id)s AND key = %(key)s;

-- name: idempotency_claim
-- Claim the key for this request's transaction. Nothing returned: another POST with the key
-- committed first (this INSERT waited for it); read its answer with idempotency_find.
INSERT INTO eve.idempotency_keys (org_id, key, route, body_hash, user_id)
VALUES (%(org_id)s, %(key)s, %(route)s, %(body_hash)s, %(user_id)s)
ON CONFLICT (org_id, key) DO NOTHING
RETURNING key;

-- name: idempotency_finish
-- The answer the claiming POST got, for every retry with the key.
UPDATE eve.idempotency_keys SET status = %(status)s, response = %(response)s::jsonb
WHERE org_id = %(org_id)s AND key = %(key)s;
