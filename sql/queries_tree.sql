-- Named queries of request trees (#15): parent/children, the agent's scope, tree limits.
-- Trees are shallow (depth is capped, EVE_MAX_TREE_DEPTH), and idx_requests_parent
-- serves every walk down.

-- name: tree_ancestors
-- The request and its ancestors, nearest first (depth 0 = the request itself).
WITH RECURSIVE up(id, parent_id, org_id, status, priority, depth) AS (
    SELECT id, parent_id, org_id, status, priority, 0 FROM eve.orchestration_requests WHERE id = %(id)s
    UNION ALL
    SELECT r.id, r.parent_id, r.org_id, r.status, r.priority, up.depth + 1
    FROM eve.orchestration_requests r JOIN up ON r.id = up.parent_id
    WHERE up.depth < 50
)
SELECT id, parent_id, org_id, status, priority, depth FROM up ORDER BY depth;

-- name: tree_descendants
-- Every request below the root (not the root), with its depth below it.
WITH RECURSIVE down(id, depth) AS (
    SELECT id, 1 FROM eve.orchestration_requests WHERE parent_id = %(root)s
    UNION ALL
    SELECT r.id, down.depth + 1
    FROM eve.orchestration_requests r JOIN down ON r.parent_id = down.id
    WHERE down.depth < 50
)
SELECT r.id, r.parent_id, r.status, r.worker_type, r.prompt, r.created_at, r.reply_to, down.depth,
       res.status AS result_status, res.summary AS result_summary, res.error AS result_error
FROM down
JOIN eve.orchestration_requests r ON r.id = down.id
LEFT JOIN eve.orchestration_results res ON res.request_id = r.id
ORDER BY down.depth, r.created_at, r.id;

-- name: tree_children
SELECT r.id, r.parent_id, r.status, r.worker_type, r.prompt, r.created_at, r.reply_to, 1 AS depth,
       res.status AS result_status, res.summary AS result_summary, res.error AS result_error
FROM eve.orchestration_requests r
LEFT JOIN eve.orchestration_results res ON res.request_id = r.id
WHERE r.parent_id = %(id)s
ORDER BY r.created_at, r.id;

-- name: tree_count_below
WITH RECURSIVE down(id, depth) AS (
    SELECT id, 1 FROM eve.orchestration_requests WHERE parent_id = %(root)s
    UNION ALL
    SELECT r.id, down.depth + 1
    FROM eve.orchestration_requests r JOIN down ON r.parent_id = down.id
    WHERE down.depth < 50
)
SELECT count(*) AS n FROM down;

-- name: tree_lock
-- Serializes child creation within one tree, so two agents cannot both take the last slot.
SELECT pg_advisory_xact_lock(hashtextextended(%(root)s::text, 15));

-- name: wait_insert_child
INSERT INTO eve.request_waits (request_id, org_id, kind, ref_id)
VALUES (%(request_id)s, %(org_id)s, 'child', %(ref_id)s);

-- name: request_wait_requested
-- `eve wait`: the running request asks to be parked when its agent exits. Returns the
-- open waits so the CLI can say what it waits for.
WITH req AS (
    UPDATE eve.orchestration_requests
    SET wait_requested_at = coalesce(wait_requested_at, now())
    WHERE id = %(id)s AND status IN ('claimed', 'processing')
    RETURNING id
)
SELECT req.id,
       ARRAY(SELECT w.ref_id FROM eve.request_waits w
             WHERE w.request_id = req.id AND w.resolved_at IS NULL ORDER BY w.id) AS open_children,
       (SELECT count(*) FROM eve.request_waits w WHERE w.request_id = req.id) AS waits
FROM req;

-- name: tree_cancel_descendants
-- Everything below a cancelled request that has not finished: pending/waiting ones are
-- finished as cancelled here (with result and event); running ones are flagged so their
-- workers stop them. Returns the ids it touched.
WITH RECURSIVE down(id, depth) AS (
    SELECT id, 1 FROM eve.orchestration_requests WHERE parent_id = %(id)s
    UNION ALL
    SELECT r.id, down.depth + 1
    FROM eve.orchestration_requests r JOIN down ON r.parent_id = down.id
    WHERE down.depth < 50
), idle AS (
    UPDATE eve.orchestration_requests r
    SET status = 'cancelled', finished_at = now(), last_error = 'cancelled with its parent'
    FROM down
    WHERE r.id = down.id AND r.status IN ('pending', 'waiting')
    RETURNING r.id, r.org_id, r.status
), idle_results AS (
    INSERT INTO eve.orchestration_results (request_id, org_id, status, error, error_code)
    SELECT id, org_id, 'cancelled', 'cancelled with its parent', 'cancelled' FROM idle
    ON CONFLICT (request_id) DO NOTHING
), flagged AS (
    UPDATE eve.orchestration_requests r
    SET cancel_requested_at = coalesce(r.cancel_requested_at, now())
    FROM down
    WHERE r.id = down.id AND r.status IN ('claimed', 'processing')
    RETURNING r.id, r.org_id
), logged AS (
    INSERT INTO eve.request_events (request_id, org_id, kind, data)
    SELECT id, org_id, 'cancelled', jsonb_build_object('while', 'pending', 'with_parent', %(id)s::text) FROM idle
    UNION ALL
    SELECT id, org_id, 'cancel_requested', jsonb_build_object('with_parent', %(id)s::text) FROM flagged
)
SELECT id FROM idle UNION ALL SELECT id FROM flagged;
