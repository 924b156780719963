-- Human in the loop (eve.hitl): questions agents ask, answers people give, expiry.
--
-- Lock order, as in 0009 (park, resolve): the waiting request's row first, then the
-- question. Asking, answering and expiring all lock the request before they touch the
-- question, so none of them deadlocks with a cancel (which locks the request, then
-- closes its questions through the results trigger).

-- name: hitl_mark_waiting
-- The asking agent's request: still running, and now asking to wait. Locks its row.
UPDATE eve.orchestration_requests
SET wait_requested_at = coalesce(wait_requested_at, now())
WHERE id = %(request_id)s AND status IN ('claimed', 'processing')
RETURNING id, org_id, wait_requested_at;

-- name: hitl_open_for_request
SELECT count(*) AS n FROM eve.hitl_requests
WHERE request_id = %(request_id)s AND status = 'pending';

-- name: hitl_insert
INSERT INTO eve.hitl_requests (request_id, org_id, question, options, expires_at)
VALUES (%(request_id)s, %(org_id)s, %(question)s, %(options)s, %(expires_at)s)
RETURNING id;

-- name: hitl_wait_insert
INSERT INTO eve.request_waits (request_id, org_id, kind, ref_id)
VALUES (%(request_id)s, %(org_id)s, 'question', %(id)s);

-- name: hitl_wake_expiry
-- Wakes every scheduler loop (they expire questions) to re-read the next due time.
SELECT pg_notify('eve_schedules', 'hitl');

-- name: hitl_list
-- Questions the caller may see (RLS), filtered; pending ones oldest first (who has waited
-- longest), everything else newest first. Served by idx_hitl_pending_org when pending.
SELECT h.*, r.worker_type, r.status AS request_status, r.prompt AS request_prompt, o.slug AS org_slug,
       count(*) OVER () AS total
FROM eve.hitl_requests h
JOIN eve.orchestration_requests r ON r.id = h.request_id
JOIN eve.organizations o ON o.id = h.org_id
WHERE (%(statuses)s::text[] IS NULL OR h.status = ANY(%(statuses)s::text[]))
  AND (%(org_id)s::uuid IS NULL OR h.org_id = %(org_id)s::uuid)
  AND (%(request_id)s::uuid IS NULL OR h.request_id = %(request_id)s::uuid)
ORDER BY CASE WHEN %(oldest_first)s THEN h.asked_at END ASC,
         h.asked_at DESC, h.id
LIMIT %(limit)s;

-- name: hitl_get
SELECT h.*, r.worker_type, r.status AS request_status, r.prompt AS request_prompt, o.slug AS org_slug
FROM eve.hitl_requests h
JOIN eve.orchestration_requests r ON r.id = h.request_id
JOIN eve.organizations o ON o.id = h.org_id
WHERE h.id = %(id)s;

-- name: hitl_lock_request
-- Lock the question's request (lock order: request, then question).
SELECT r.id FROM eve.orchestration_requests r
WHERE r.id = (SELECT request_id FROM eve.hitl_requests WHERE id = %(id)s)
FOR UPDATE OF r;

-- name: hitl_answer
-- Only a pending question that has not run out of time takes an answer; a second answer
-- (or a race lost to another answerer) updates nothing.
UPDATE eve.hitl_requests
SET status = 'answered', response = %(response)s, answered_by = %(user_id)s,
    answered_by_name = %(name)s, answered_at = now(), closed_at = now()
WHERE id = %(id)s AND status = 'pending' AND (expires_at IS NULL OR expires_at > now())
RETURNING *;

-- name: hitl_expire_one
UPDATE eve.hitl_requests
SET status = 'expired', closed_at = now()
WHERE id = %(id)s AND status = 'pending' AND expires_at <= %(now)s
RETURNING *;

-- name: hitl_resolve_wait
SELECT eve.request_resolve_wait('question', %(id)s, %(outcome)s) AS request_id;

-- name: hitl_user_name
SELECT coalesce(nullif(display_name, ''), email) AS name FROM eve.users WHERE id = %(user_id)s;

-- name: hitl_due
-- Pending questions whose time ran out (service role: every org), earliest first.
SELECT id FROM eve.hitl_requests
WHERE status = 'pending' AND expires_at <= %(now)s
ORDER BY expires_at
LIMIT %(limit)s;

-- name: hitl_next_expiry
SELECT min(expires_at) AS at FROM eve.hitl_requests
WHERE status = 'pending' AND expires_at IS NOT NULL;
