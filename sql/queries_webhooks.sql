-- Named queries of webhooks (#33): endpoints (API, as the caller under RLS) and the delivery
-- outbox (workers, service_role).

-- name: webhook_endpoint_insert
INSERT INTO eve.webhook_endpoints (org_id, url, events, description, secret, created_by)
VALUES (%(org_id)s, %(url)s, %(events)s, %(description)s, %(secret)s, eve.current_user_id())
RETURNING id, org_id, url, events, description, created_at, disabled_at, disabled_reason, failures_in_row;

-- name: webhook_endpoints_list
SELECT id, org_id, url, events, description, created_at, disabled_at, disabled_reason, failures_in_row
FROM eve.webhook_endpoints WHERE org_id = %(org_id)s ORDER BY created_at, id;

-- name: webhook_endpoint_get
SELECT id, org_id, url, events, description, created_at, disabled_at, disabled_reason, failures_in_row
FROM eve.webhook_endpoints WHERE id = %(id)s AND org_id = %(org_id)s;

-- name: webhook_endpoint_delete
DELETE FROM eve.webhook_endpoints WHERE id = %(id)s AND org_id = %(org_id)s RETURNING id;

-- name: webhook_deliveries_list
-- An endpoint's delivery log, newest first.
SELECT id, message_id, event, payload, created_at, next_attempt_at, attempts, delivered_at, given_up_at,
       last_status, last_error
FROM eve.webhook_deliveries WHERE endpoint_id = %(id)s AND org_id = %(org_id)s
ORDER BY id DESC LIMIT %(limit)s;

-- name: webhook_delivery_insert
-- A delivery the API makes itself (a test ping); results' deliveries come from the trigger (0021).
INSERT INTO eve.webhook_deliveries (endpoint_id, org_id, message_id, event, payload)
VALUES (%(endpoint_id)s, %(org_id)s, %(message_id)s, %(event)s, %(payload)s::jsonb)
RETURNING id, message_id, event, payload, created_at, next_attempt_at, attempts, delivered_at, given_up_at,
          last_status, last_error;

-- name: webhook_claim_due
-- Due deliveries for this worker: attempts counted and the row leased (next_attempt_at moved
-- on) in one statement, so a worker that dies mid-send only delays the retry.
WITH due AS (
    SELECT d.id FROM eve.webhook_deliveries d
    WHERE d.delivered_at IS NULL AND d.given_up_at IS NULL AND d.next_attempt_at <= now()
    ORDER BY d.next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE eve.webhook_deliveries d
SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => %(lease_s)s)
FROM due, eve.webhook_endpoints e
WHERE d.id = due.id AND e.id = d.endpoint_id
RETURNING d.id, d.message_id, d.event, d.payload, d.attempts, d.org_id, e.id AS endpoint_id, e.url, e.secret,
          e.disabled_at;

-- name: webhook_next_due
SELECT min(next_attempt_at) AS at FROM eve.webhook_deliveries WHERE delivered_at IS NULL AND given_up_at IS NULL;

-- name: webhook_delivered
WITH d AS (
    UPDATE eve.webhook_deliveries SET delivered_at = now(), last_status = %(status)s, last_error = NULL
    WHERE id = %(id)s RETURNING endpoint_id
)
UPDATE eve.webhook_endpoints e SET failures_in_row = 0 FROM d WHERE e.id = d.endpoint_id;

-- name: webhook_retry_later
UPDATE eve.webhook_deliveries
SET next_attempt_at = now() + make_interval(secs => %(after_s)s), last_status = %(status)s, last_error = %(error)s
WHERE id = %(id)s;

-- name: webhook_give_up
-- The last try failed: the delivery is given up on, and an endpoint that has had that
-- many in a row (disable_after) is disabled, with the reason.
WITH d AS (
    UPDATE eve.webhook_deliveries SET given_up_at = now(), last_status = %(status)s, last_error = %(error)s
    WHERE id = %(id)s RETURNING endpoint_id
)
UPDATE eve.webhook_endpoints e
SET failures_in_row = e.failures_in_row + 1,
    disabled_at = CASE WHEN e.failures_in_row + 1 >= %(disable_after)s THEN coalesce(e.disabled_at, now())
                       ELSE e.disabled_at END,
    disabled_reason = CASE WHEN e.failures_in_row + 1 >= %(disable_after)s AND e.disabled_at IS NULL
                           THEN %(disable_after)s || ' deliveries in a row failed for a day; the last: ' || %(error)s
                           ELSE e.disabled_reason END
FROM d WHERE e.id = d.endpoint_id;
