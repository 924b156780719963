-- Named queries for eve.queue and friends. Loaded once by eve.queries; every statement
-- the platform runs against the queue lives here, so it can be read, reviewed and
-- EXPLAINed in one place. Parameters use psycopg's %(name)s style.

-- name: worker_type_get
SELECT id, name, docker_image, capabilities, config
FROM eve.worker_types WHERE id = %(worker_type)s;

-- name: worker_types_list
SELECT id, name, docker_image, capabilities, config
FROM eve.worker_types ORDER BY id;

-- name: request_insert
-- A request with no blockers (blocked_by keeps its default, empty). Why a statement of
-- its own: with the blocker filter below in the text, the prepared statement's generic
-- plan is costed for a 10-element blocker list while the custom plans see an empty one,
-- so PostgreSQL can decide the generic plan is dearer and re-plan the INSERT on every
-- call. It did in the POST benchmark: 0.3 ms of planning per POST, on most connections
-- (tests/integration/test_query_plans.py compares the two plans' costs).
INSERT INTO eve.orchestration_requests
    (org_id, user_id, worker_type, prompt, context, config, priority, max_attempts,
     run_after, parent_id, replay_of, reply_to, workspace)
VALUES
    (%(org_id)s, %(user_id)s, %(worker_type)s, %(prompt)s, %(context)s, %(config)s,
     %(priority)s, %(max_attempts)s, coalesce(%(run_after)s, now()),
     %(parent_id)s, %(replay_of)s, %(reply_to)s, %(workspace)s)
RETURNING *;

-- name: request_insert_blocked
-- request_insert with blockers; blockers that already completed do not block.
INSERT INTO eve.orchestration_requests
    (org_id, user_id, worker_type, prompt, context, config, priority, max_attempts,
     run_after, blocked_by, parent_id, replay_of, reply_to, workspace)
VALUES
    (%(org_id)s, %(user_id)s, %(worker_type)s, %(prompt)s, %(context)s, %(config)s,
     %(priority)s, %(max_attempts)s, coalesce(%(run_after)s, now()),
     ARRAY(SELECT b FROM unnest(%(blocked_by)s::uuid[]) AS b
           WHERE NOT EXISTS (SELECT 1 FROM eve.orchestration_requests d
                             WHERE d.id = b AND d.status = 'completed')),
     %(parent_id)s, %(replay_of)s, %(reply_to)s, %(workspace)s)
RETURNING *;

-- name: requests_existing
SELECT id FROM eve.orchestration_requests WHERE id = ANY(%(ids)s::uuid[]);

-- name: request_get
SELECT * FROM eve.orchestration_requests WHERE id = %(id)s;

-- name: request_get_for_update
SELECT * FROM eve.orchestration_requests WHERE id = %(id)s FOR UPDATE;

-- name: claim_batch
-- SKIP LOCKED on the partial poll index: concurrent claimers never block each other
-- and never take the same row. A claim sets the lease, counts the attempt and logs a
-- `claimed` event, all in this one statement (one round trip per batch).
-- Fair (0011): within a priority, fair_seq interleaves orgs round-robin; orgs at their
-- running cap for this type are skipped, and a batch never takes an org past its cap.
WITH caps AS (
    SELECT org_id, room FROM eve.org_caps(%(worker_type)s)
    -- No limits anywhere (the common case): a one-time filter, so the function (and its
    -- lock) is not even called; measured 2.6-2.8k -> 3.3-3.5k jobs/s in the perf tripwire.
    WHERE EXISTS (SELECT 1 FROM eve.org_limits)
), candidates AS (
    SELECT id, org_id, priority, fair_seq, run_after, created_at
    FROM eve.orchestration_requests
    WHERE worker_type = %(worker_type)s
      AND status = 'pending'
      AND run_after <= now()
      AND blocked_by = '{}'
      AND org_id NOT IN (SELECT org_id FROM caps WHERE room <= 0)
    ORDER BY priority DESC, fair_seq, run_after, created_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), allowed AS (
    SELECT c.id
    FROM (SELECT id, org_id, row_number() OVER (PARTITION BY org_id
                                                ORDER BY priority DESC, fair_seq, run_after, created_at) AS n
          FROM candidates) c
    LEFT JOIN caps ON caps.org_id = c.org_id
    WHERE caps.room IS NULL OR c.n <= caps.room
), claimed AS (
    UPDATE eve.orchestration_requests r
    SET status = 'claimed',
        claimed_at = now(),
        claimed_by = %(worker_id)s,
        attempts = r.attempts + 1,
        heartbeat_at = now(),
        lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
    FROM allowed c
    WHERE r.id = c.id
    RETURNING r.*
), logged AS (
    INSERT INTO eve.request_events (request_id, org_id, kind, data)
    SELECT id, org_id, 'claimed', jsonb_build_object('worker_id', claimed_by, 'attempt', attempts)
    FROM claimed
)
SELECT * FROM claimed ORDER BY priority DESC, fair_seq, run_after, created_at;

-- name: claim_next_function
SELECT * FROM eve.claim_next_request(%(worker_type)s, %(worker_id)s,
                                     make_interval(secs => %(lease_seconds)s))
WHERE id IS NOT NULL;

-- name: mark_processing
UPDATE eve.orchestration_requests
SET status = 'processing', started_at = coalesce(started_at, now()), heartbeat_at = now()
WHERE id = %(id)s AND claimed_by = %(worker_id)s AND status IN ('claimed', 'processing')
RETURNING *;

-- name: renew_leases
-- Heartbeat for every slot of a worker at once; returns the ids it still holds and
-- whether a cancel was asked for, so the worker learns both in one round trip.
-- A join with the id list (not `id = ANY(...)`), so even the generic plan is one
-- primary-key lookup per id (tests/integration/test_query_plans.py).
UPDATE eve.orchestration_requests r
SET heartbeat_at = now(),
    lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
FROM unnest(%(ids)s::uuid[]) AS held(id)
WHERE r.id = held.id AND r.claimed_by = %(worker_id)s
  AND r.status IN ('claimed', 'processing')
RETURNING r.id, r.cancel_requested_at IS NOT NULL AS cancel_requested;

-- name: finish_request
-- The result row, the final status and the closing event in one statement: the update
-- only matches while this worker still holds the request, and results.request_id is
-- unique, so a result can never be written twice. On success, dependents waiting on
-- this request are unblocked in the same statement; otherwise `has_dependents` tells
-- the caller to fail them (fail_dependents).
WITH req AS (
    UPDATE eve.orchestration_requests
    SET status = %(final_status)s,
        finished_at = now(),
        lease_expires_at = NULL,
        last_error = %(error)s
    WHERE id = %(id)s
      AND status IN ('claimed', 'processing')
      AND claimed_by IS NOT DISTINCT FROM %(worker_id)s
    RETURNING id, org_id
), res AS (
    INSERT INTO eve.orchestration_results
        (request_id, org_id, status, output, summary, duration_ms, tokens_used, cost_usd, error, error_code)
    SELECT req.id, req.org_id, %(status)s, %(output)s, %(summary)s, %(duration_ms)s, %(tokens_used)s,
           %(cost_usd)s, %(error)s, %(error_code)s
    FROM req
    ON CONFLICT (request_id) DO NOTHING
    RETURNING *
), logged AS (
    INSERT INTO eve.request_events (request_id, org_id, kind, data)
    SELECT res.request_id, res.org_id, %(event_kind)s, %(event_data)s FROM res
), unblocked AS (
    UPDATE eve.orchestration_requests d
    SET blocked_by = array_remove(d.blocked_by, res.request_id)
    FROM res
    WHERE %(success)s AND d.status = 'pending' AND d.blocked_by <> '{}'
      AND d.blocked_by @> ARRAY[res.request_id]
)
SELECT res.*,
       (NOT %(success)s AND EXISTS (
            SELECT 1 FROM eve.orchestration_requests d
            WHERE d.status = 'pending' AND d.blocked_by <> '{}' AND d.blocked_by @> ARRAY[res.request_id]
       )) AS has_dependents
FROM res;

-- name: finish_many
-- finish_request for many requests in one statement (the worker coalesces results that
-- finish within a few ms): the same fence per row (still in flight, held by that
-- worker), one result per request (unique request_id), the closing events, and
-- dependents unblocked once for every finished blocker of theirs in the batch.
-- The input is one JSON array of objects, one per request, with distinct ids (one
-- json.dumps in the client instead of fourteen arrays dumped element by element).
WITH input AS (
    SELECT *
    FROM jsonb_to_recordset(%(items)s::jsonb)
         AS i(id uuid, worker_id text, final_status text, status text, output jsonb, summary text,
              duration_ms integer, tokens_used integer, cost_usd numeric, error text, error_code text,
              event_kind text, event_data jsonb, success boolean)
    LIMIT %(n)s  -- = the number of items: tells the planner how many (it guesses 100 otherwise)
), locked AS (
    -- One primary-key lookup per input row: a LATERAL subquery with LIMIT is never
    -- flattened into a join the planner could turn into a scan of the table. Rows are
    -- locked in id order, so overlapping batches wait for each other instead of
    -- deadlocking; a row finished meanwhile fails the re-checked filter and is skipped.
    SELECT r.id, i.final_status, i.error
    FROM (SELECT * FROM input ORDER BY id) i
    CROSS JOIN LATERAL (
        SELECT r.id FROM eve.orchestration_requests r
        WHERE r.id = i.id
          AND r.status IN ('claimed', 'processing')
          AND r.claimed_by IS NOT DISTINCT FROM i.worker_id
        LIMIT 1
        FOR UPDATE
    ) r
), req AS (
    UPDATE eve.orchestration_requests r
    SET status = l.final_status,
        finished_at = now(),
        lease_expires_at = NULL,
        last_error = l.error
    FROM locked l
    WHERE r.id = l.id
    RETURNING r.id, r.org_id
), res AS (
    INSERT INTO eve.orchestration_results
        (request_id, org_id, status, output, summary, duration_ms, tokens_used, cost_usd, error, error_code)
    SELECT req.id, req.org_id, i.status, i.output, i.summary, i.duration_ms, i.tokens_used, i.cost_usd,
           i.error, i.error_code
    FROM req JOIN input i ON i.id = req.id
    ON CONFLICT (request_id) DO NOTHING
    RETURNING *
), logged AS (
    INSERT INTO eve.request_events (request_id, org_id, kind, data)
    SELECT res.request_id, res.org_id, i.event_kind, i.event_data
    FROM res JOIN input i ON i.id = res.request_id
), succeeded AS (
    SELECT array_agg(res.request_id) AS ids
    FROM res JOIN input i ON i.id = res.request_id
    WHERE i.success
), dependents AS (
    SELECT d.id, s.ids
    FROM eve.orchestration_requests d, succeeded s
    WHERE s.ids IS NOT NULL AND d.status = 'pending' AND d.blocked_by <> '{}' AND d.blocked_by && s.ids
    ORDER BY d.id
    FOR UPDATE OF d
), unblocked AS (
    UPDATE eve.orchestration_requests d
    SET blocked_by = ARRAY(SELECT b FROM unnest(d.blocked_by) WITH ORDINALITY AS u(b, n)
                           WHERE b <> ALL(dep.ids) ORDER BY n)
    FROM dependents dep
    WHERE d.id = dep.id
)
SELECT res.*,
       (NOT i.success AND EXISTS (
            SELECT 1 FROM eve.orchestration_requests d
            WHERE d.status = 'pending' AND d.blocked_by <> '{}' AND d.blocked_by @> ARRAY[res.request_id]
       )) AS has_dependents
FROM res JOIN input i ON i.id = res.request_id;

-- name: fail_dependents
-- Everything (transitively) blocked by a request that did not succeed can never run:
-- fail it with dependency_failed, with its result and event, in one statement.
WITH RECURSIVE deps(id, blocker) AS (
    SELECT d.id, %(id)s::uuid
    FROM eve.orchestration_requests d
    WHERE d.status = 'pending' AND d.blocked_by <> '{}' AND d.blocked_by @> ARRAY[%(id)s::uuid]
    UNION
    SELECT d.id, deps.id
    FROM eve.orchestration_requests d
    JOIN deps ON d.blocked_by @> ARRAY[deps.id]
    WHERE d.status = 'pending' AND d.blocked_by <> '{}'
), failed AS (
    UPDATE eve.orchestration_requests r
    SET status = 'failed', finished_at = now(),
        last_error = 'blocked by request ' || deps.blocker || ', which did not succeed'
    FROM deps
    WHERE r.id = deps.id AND r.status = 'pending'
    RETURNING r.id, r.org_id, r.last_error
), res AS (
    INSERT INTO eve.orchestration_results (request_id, org_id, status, error, error_code)
    SELECT id, org_id, 'failed', last_error, 'dependency_failed' FROM failed
    ON CONFLICT (request_id) DO NOTHING
), logged AS (
    INSERT INTO eve.request_events (request_id, org_id, kind, data)
    SELECT id, org_id, 'error', jsonb_build_object('error', last_error, 'error_code', 'dependency_failed')
    FROM failed
)
SELECT id FROM failed;

-- name: finish_unclaimed
-- Final state for a request nobody runs (cancelled while pending, failed dependency).
WITH req AS (
    UPDATE eve.orchestration_requests
    SET status = %(final_status)s, finished_at = now(), last_error = %(error)s
    WHERE id = %(id)s AND status IN ('pending', 'waiting')
    RETURNING id, org_id
)
INSERT INTO eve.orchestration_results (request_id, org_id, status, error, error_code)
SELECT req.id, req.org_id, %(status)s, %(error)s, %(error_code)s FROM req
ON CONFLICT (request_id) DO NOTHING
RETURNING *;

-- name: requeue_request
-- Back to pending with a later run_after (retry backoff, or a graceful shutdown).
UPDATE eve.orchestration_requests
SET status = 'pending',
    claimed_by = NULL,
    claimed_at = NULL,
    lease_expires_at = NULL,
    heartbeat_at = NULL,
    run_after = now() + make_interval(secs => %(delay_seconds)s),
    attempts = greatest(attempts - %(refund)s, 0),
    last_error = %(error)s
WHERE id = %(id)s AND claimed_by = %(worker_id)s AND status IN ('claimed', 'processing')
RETURNING *;

-- name: request_cancel_flag
UPDATE eve.orchestration_requests
SET cancel_requested_at = coalesce(cancel_requested_at, now())
WHERE id = %(id)s AND status IN ('claimed', 'processing')
RETURNING *;

-- name: reaper_lock
-- One reaper at a time across all workers; the lock ends with the transaction.
SELECT pg_try_advisory_xact_lock(%(key)s) AS locked;

-- name: expired_leases
SELECT id, org_id, attempts, max_attempts, claimed_by
FROM eve.orchestration_requests
WHERE status IN ('claimed', 'processing') AND lease_expires_at < now()
ORDER BY lease_expires_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: worker_claims
-- What a worker id still holds: at start, its previous incarnation's claims (that
-- process and, with the sandbox, its agents are dead), to requeue at once.
SELECT id, org_id, attempts, max_attempts, claimed_by
FROM eve.orchestration_requests
WHERE claimed_by = %(worker_id)s AND status IN ('claimed', 'processing')
FOR UPDATE;

-- name: reap_requeue
UPDATE eve.orchestration_requests
SET status = 'pending', claimed_by = NULL, claimed_at = NULL, lease_expires_at = NULL,
    heartbeat_at = NULL, run_after = now(), last_error = %(error)s
WHERE id = %(id)s AND status IN ('claimed', 'processing');

-- name: queue_depth
-- Per worker type: pending (and the oldest pending age), in flight, and what finished in
-- the last hour. Every count reads a partial or narrow index, so history does not slow it.
SELECT t.id AS worker_type,
       coalesce(p.pending, 0) AS pending,
       p.oldest_pending_at,
       coalesce(f.in_flight, 0) AS running,
       coalesce(h.completed, 0) AS completed_last_hour,
       coalesce(h.failed, 0) AS failed_last_hour,
       coalesce(h.cancelled, 0) AS cancelled_last_hour
FROM eve.worker_types t
LEFT JOIN LATERAL (
    SELECT count(*) AS pending, min(created_at) AS oldest_pending_at
    FROM eve.orchestration_requests r
    WHERE r.worker_type = t.id AND r.status = 'pending'
) p ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS in_flight
    FROM eve.orchestration_requests r
    -- every in-flight row holds a lease: the lease condition lets the reaper's partial
    -- index (lease_expires_at IS NOT NULL, migration 0003) serve this count
    WHERE r.worker_type = t.id AND r.status IN ('claimed', 'processing') AND r.lease_expires_at IS NOT NULL
) f ON true
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE r.status = 'completed') AS completed,
           count(*) FILTER (WHERE r.status = 'failed') AS failed,
           count(*) FILTER (WHERE r.status = 'cancelled') AS cancelled
    FROM eve.orchestration_requests r
    WHERE r.worker_type = t.id AND r.finished_at IS NOT NULL
      AND r.finished_at > now() - interval '1 hour'
) h ON true
ORDER BY t.id;

-- name: event_insert_batch
-- The batch is one JSON array of objects (kind, data, at; at null = now), inserted in order:
-- one json.dumps in the worker instead of three arrays that psycopg dumps element by
-- element in Python (that was over a third of a streaming worker's CPU).
INSERT INTO eve.request_events (request_id, org_id, kind, data, at)
SELECT %(request_id)s, %(org_id)s, x.e->>'kind', x.e->'data', coalesce((x.e->>'at')::timestamptz, now())
FROM jsonb_array_elements(%(events)s::jsonb) WITH ORDINALITY AS x(e, n)
ORDER BY x.n
RETURNING id;

-- name: events_list
SELECT id, request_id, org_id, at, kind, data
FROM eve.request_events
WHERE request_id = %(request_id)s AND id > %(after)s
ORDER BY id
LIMIT %(limit)s;

-- name: result_get
SELECT * FROM eve.orchestration_results WHERE request_id = %(request_id)s;

-- name: prune_finished
DELETE FROM eve.orchestration_requests
WHERE id IN (
    SELECT id FROM eve.orchestration_requests
    WHERE finished_at < now() - make_interval(secs => %(older_than_seconds)s)
      AND status IN ('completed', 'failed', 'cancelled')
    LIMIT %(batch)s
)
AND NOT EXISTS (SELECT 1 FROM eve.orchestration_requests c
                WHERE c.replay_of = orchestration_requests.id OR c.parent_id = orchestration_requests.id);

-- name: org_insert
INSERT INTO eve.organizations (name, slug) VALUES (%(name)s, %(slug)s) RETURNING *;

-- name: org_get_by_slug
SELECT * FROM eve.organizations WHERE slug = %(slug)s;

-- name: user_insert
INSERT INTO eve.users (email, display_name, is_operator)
VALUES (%(email)s, %(display_name)s, %(is_operator)s) RETURNING *;

-- name: user_get_by_email
SELECT * FROM eve.users WHERE email = %(email)s;

-- name: member_upsert
INSERT INTO eve.org_members (org_id, user_id, role) VALUES (%(org_id)s, %(user_id)s, %(role)s)
ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role
RETURNING *;

-- name: apikey_insert
INSERT INTO eve.api_keys (org_id, user_id, name, prefix, secret_hash)
VALUES (%(org_id)s, %(user_id)s, %(name)s, %(prefix)s, %(secret_hash)s)
RETURNING id, org_id, user_id, name, prefix, created_at;

-- name: apikey_revoke
UPDATE eve.api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE prefix = %(prefix)s RETURNING id, org_id, prefix, revoked_at;

-- name: apikey_lookup
SELECT * FROM eve.lookup_api_key(%(prefix)s);

-- name: apikey_touch
SELECT eve.touch_api_key(%(key_id)s);
