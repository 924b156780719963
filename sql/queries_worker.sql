-- Named queries of the worker daemon: its registry row and its bounded log.

-- name: worker_register
INSERT INTO eve.workers (id, worker_type, hostname, pid, version, slots, state, started_at, heartbeat_at, sandbox,
                         network, limits)
VALUES (%(id)s, %(worker_type)s, %(hostname)s, %(pid)s, %(version)s, %(slots)s, 'idle', now(), now(), %(sandbox)s,
        %(network)s, %(limits)s)
ON CONFLICT (id) DO UPDATE
SET worker_type = EXCLUDED.worker_type, hostname = EXCLUDED.hostname, pid = EXCLUDED.pid,
    version = EXCLUDED.version, slots = EXCLUDED.slots, state = 'idle', started_at = now(),
    heartbeat_at = now(), stopped_at = NULL, current_request_id = NULL, sandbox = EXCLUDED.sandbox,
    network = EXCLUDED.network, limits = EXCLUDED.limits, disk_low = false, drain_requested_at = NULL;

-- name: worker_heartbeat
-- Also tells the worker whether an operator asked it to drain.
UPDATE eve.workers
SET heartbeat_at = now(), state = %(state)s, current_request_id = %(current_request_id)s,
    disk_low = %(disk_low)s
WHERE id = %(id)s
RETURNING drain_requested_at IS NOT NULL AS drain;

-- name: worker_stopped
UPDATE eve.workers
SET state = 'stopped', stopped_at = now(), current_request_id = NULL, heartbeat_at = now()
WHERE id = %(id)s;

-- name: worker_log_insert
-- `at` is when the line was logged, not when the batch reached the database (a heartbeat later).
INSERT INTO eve.worker_logs (worker_id, level, message, data, at)
SELECT %(worker_id)s, l.level, l.message, l.data, coalesce(l.at, now())
FROM unnest(%(levels)s::text[], %(messages)s::text[], %(datas)s::jsonb[], %(ats)s::timestamptz[])
     AS l(level, message, data, at);

-- name: worker_log_trim
-- Keep the newest rows per worker only: worker_logs is a tail, not an archive.
DELETE FROM eve.worker_logs
WHERE worker_id = %(worker_id)s
  AND id < (SELECT min(id) FROM (SELECT id FROM eve.worker_logs WHERE worker_id = %(worker_id)s
                                 ORDER BY id DESC LIMIT %(keep)s) newest);

-- name: request_token_insert
-- A new credential for the agent of this attempt; any earlier one of the request dies.
WITH old AS (
    UPDATE eve.request_tokens SET revoked_at = now()
    WHERE request_id = %(request_id)s AND revoked_at IS NULL
)
INSERT INTO eve.request_tokens (request_id, org_id, attempt, prefix, secret_hash)
VALUES (%(request_id)s, %(org_id)s, %(attempt)s, %(prefix)s, %(secret_hash)s);

-- name: request_token_revoke
UPDATE eve.request_tokens SET revoked_at = now() WHERE request_id = %(request_id)s AND revoked_at IS NULL;

-- name: session_get
SELECT * FROM eve.request_sessions WHERE request_id = %(request_id)s;

-- name: session_save
-- The session of a turn that ended by waiting; totals add up across turns.
INSERT INTO eve.request_sessions
    (request_id, org_id, session_id, transcript, transcript_path, workspace_archive, workspace_bytes,
     workspace_kept, host, workspace_path, turns, active_ms, tokens_used, cost_usd)
VALUES (%(request_id)s, %(org_id)s, %(session_id)s, %(transcript)s, %(transcript_path)s, %(archive)s,
        %(archive_bytes)s, %(kept)s, %(host)s, %(workspace_path)s, 1, %(active_ms)s, %(tokens)s, %(cost)s)
ON CONFLICT (request_id) DO UPDATE
SET session_id = EXCLUDED.session_id, transcript = EXCLUDED.transcript,
    transcript_path = EXCLUDED.transcript_path, workspace_archive = EXCLUDED.workspace_archive,
    workspace_bytes = EXCLUDED.workspace_bytes, workspace_kept = EXCLUDED.workspace_kept,
    host = EXCLUDED.host, workspace_path = EXCLUDED.workspace_path,
    turns = eve.request_sessions.turns + 1,
    active_ms = eve.request_sessions.active_ms + EXCLUDED.active_ms,
    tokens_used = eve.request_sessions.tokens_used + EXCLUDED.tokens_used,
    cost_usd = eve.request_sessions.cost_usd + EXCLUDED.cost_usd,
    updated_at = now();

-- name: turn_end
-- The agent exited: its token dies, and the worker learns whether it asked to wait
-- (`eve wait`), in one round trip.
WITH revoked AS (
    UPDATE eve.request_tokens SET revoked_at = now() WHERE request_id = %(id)s AND revoked_at IS NULL
)
SELECT wait_requested_at IS NOT NULL AS wants FROM eve.orchestration_requests
WHERE id = %(id)s AND claimed_by = %(worker_id)s;

-- name: request_park
SELECT eve.request_park(%(id)s, %(worker_id)s) AS status;

-- name: waits_undelivered
SELECT id, kind, ref_id, outcome FROM eve.request_waits
WHERE request_id = %(request_id)s AND resolved_at IS NOT NULL AND delivered_at IS NULL
ORDER BY resolved_at, id;

-- name: waits_mark_delivered
UPDATE eve.request_waits SET delivered_at = now() WHERE id = ANY(%(ids)s::bigint[]) AND delivered_at IS NULL;

-- name: requests_parked
-- Which of these workspaces belong to a request that waits (or was woken and not yet
-- resumed): the start-up sweep must leave them alone.
SELECT id FROM eve.orchestration_requests
WHERE id = ANY(%(ids)s::uuid[]) AND (status = 'waiting' OR (status = 'pending' AND resumes > 0));

-- name: requests_abandoned
-- Which of these workspaces belong to a request that was cancelled while nobody ran it
-- (pending, or parked waiting: no claim left): nothing resumes in them, so they go at once.
-- Requests that ended on a worker keep claimed_by: that worker removes (or keeps) its own.
SELECT id FROM eve.orchestration_requests
WHERE id = ANY(%(ids)s::uuid[]) AND status = 'cancelled' AND claimed_by IS NULL;

-- name: worker_drained
-- `eve up` asks this when one of its workers exits: drained by an operator (eve workers
-- drain, the drain endpoint) means it stays stopped. The mark lasts until the worker registers again.
SELECT drain_requested_at IS NOT NULL AS drained FROM eve.workers WHERE id = %(id)s;
