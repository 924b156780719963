-- Named queries of eve.schedules (cron schedules). The API runs them as eve_api with
-- eve.user_id set, so RLS decides what exists; the scheduler runs them as service_role.

-- name: schedule_insert
INSERT INTO eve.schedules
    (org_id, user_id, name, cron_expression, timezone, worker_type, request_template, enabled, overlap,
     max_delay_seconds, next_fire_at)
VALUES
    (%(org_id)s, %(user_id)s, %(name)s, %(cron_expression)s, %(timezone)s, %(worker_type)s,
     %(request_template)s, %(enabled)s, %(overlap)s, %(max_delay_seconds)s, %(next_fire_at)s)
ON CONFLICT (org_id, name) DO NOTHING
RETURNING id;

-- name: schedule_get
-- By id, or by name inside one org (the CLI lets people say `eve schedule run nightly`).
SELECT * FROM eve.schedules
WHERE (%(id)s::uuid IS NOT NULL AND id = %(id)s::uuid)
   OR (%(id)s::uuid IS NULL AND org_id = %(org_id)s AND name = %(name)s);

-- name: schedules_list
-- With the latest fire and how its request ended: the "last result" column.
SELECT s.*, f.fire_at AS last_fire_at, f.outcome AS last_outcome, f.detail AS last_detail,
       f.request_id AS last_request_id,
       r.status AS last_request_status, res.status AS last_result_status
FROM eve.schedules s
LEFT JOIN LATERAL (
    SELECT lf.fire_at, lf.outcome, lf.detail, lf.request_id FROM eve.schedule_fires lf
    WHERE lf.schedule_id = s.id ORDER BY lf.fired_at DESC LIMIT 1
) f ON true
LEFT JOIN eve.orchestration_requests r ON r.id = f.request_id
LEFT JOIN eve.orchestration_results res ON res.request_id = f.request_id
WHERE (%(id)s::uuid IS NULL OR s.id = %(id)s::uuid)
  AND (%(org_id)s::uuid IS NULL OR s.org_id = %(org_id)s::uuid)
ORDER BY s.name, s.org_id
LIMIT %(limit)s;

-- name: schedule_update
-- Every field at once (the caller merged the patch); the scheduler's own state
-- (next_fire_at) is recomputed by the caller whenever the timing changed.
UPDATE eve.schedules
SET name = %(name)s, cron_expression = %(cron_expression)s, timezone = %(timezone)s,
    worker_type = %(worker_type)s, request_template = %(request_template)s, enabled = %(enabled)s,
    overlap = %(overlap)s, max_delay_seconds = %(max_delay_seconds)s, next_fire_at = %(next_fire_at)s,
    updated_at = now()
WHERE id = %(id)s
RETURNING id;

-- name: schedule_delete
DELETE FROM eve.schedules WHERE id = %(id)s RETURNING id;

-- name: schedule_name_taken
SELECT 1 FROM eve.schedules WHERE org_id = %(org_id)s AND name = %(name)s AND id <> %(id)s;

-- name: schedules_due
-- What a scheduler must look at now; the partial index holds enabled schedules only.
SELECT id, org_id, cron_expression, timezone, next_fire_at, max_delay_seconds
FROM eve.schedules
WHERE enabled AND next_fire_at <= %(now)s
ORDER BY next_fire_at
LIMIT %(limit)s;

-- name: schedules_next_due
SELECT min(next_fire_at) AS next_fire_at FROM eve.schedules WHERE enabled;

-- name: schedule_fire_tick
-- One tick of one schedule, in one statement: the fire row and (unless the tick is
-- skipped or missed) the request. Every scheduler process may run this for the same
-- tick at the same moment; the primary key (schedule_id, fire_at) lets exactly one
-- INSERT through (ON CONFLICT DO NOTHING waits for a concurrent insert of the same
-- tick to commit, then does nothing), and the request is inserted only from the fire
-- row that INSERT returned. `expected` guards against a schedule that changed (or a
-- tick another process already moved past) since it was read. `refused`: why the org's
-- limits admit no new request now (eve.limits), or NULL.
WITH s AS (
    SELECT sc.*,
           EXISTS (SELECT 1 FROM eve.orchestration_requests p
                   WHERE p.schedule_id = sc.id
                     AND p.status IN ('pending', 'claimed', 'processing', 'waiting')) AS busy
    FROM eve.schedules sc
    WHERE sc.id = %(schedule_id)s AND sc.enabled AND sc.next_fire_at = %(expected)s
), ids AS (
    SELECT gen_random_uuid() AS request_id
), fire AS (
    INSERT INTO eve.schedule_fires (schedule_id, fire_at, org_id, outcome, request_id, detail)
    SELECT s.id, %(fire_at)s, s.org_id, o.outcome,
           CASE WHEN o.outcome = 'fired' THEN ids.request_id END,
           CASE WHEN o.outcome = 'refused' THEN %(refused)s::text END
    FROM s CROSS JOIN ids
    CROSS JOIN LATERAL (SELECT CASE WHEN %(missed)s THEN 'missed'
                                    WHEN s.overlap = 'skip' AND s.busy THEN 'skipped'
                                    WHEN %(refused)s::text IS NOT NULL THEN 'refused'
                                    ELSE 'fired' END AS outcome) o
    ON CONFLICT (schedule_id, fire_at) DO NOTHING
    RETURNING *
), req AS (
    INSERT INTO eve.orchestration_requests
        (id, org_id, user_id, worker_type, prompt, context, config, priority, max_attempts, schedule_id)
    SELECT fire.request_id, s.org_id, s.user_id, s.worker_type, s.request_template->>'prompt',
           coalesce(s.request_template->'context', '{}'), coalesce(s.request_template->'config', '{}'),
           coalesce((s.request_template->>'priority')::integer, 0),
           coalesce((SELECT (wt.config->>'max_attempts')::integer FROM eve.worker_types wt
                     WHERE wt.id = s.worker_type), 3),
           s.id
    FROM fire JOIN s ON s.id = fire.schedule_id
    WHERE fire.request_id IS NOT NULL
    RETURNING id
), moved AS (
    UPDATE eve.schedules sc
    SET next_fire_at = %(next_fire_at)s,
        last_fired_at = CASE WHEN EXISTS (SELECT 1 FROM req) THEN now() ELSE sc.last_fired_at END
    FROM s
    WHERE sc.id = s.id AND sc.next_fire_at = %(expected)s
)
SELECT fire.schedule_id, fire.fire_at, fire.outcome, req.id AS request_id
FROM fire LEFT JOIN req ON true;

-- name: schedule_run_now
-- "Run now": a fire row stamped now() and the request, in one statement. It runs a
-- paused schedule too and ignores overlap: a person asked for it.
WITH s AS (
    SELECT * FROM eve.schedules WHERE id = %(schedule_id)s
), fire AS (
    INSERT INTO eve.schedule_fires (schedule_id, fire_at, org_id, outcome, request_id)
    SELECT s.id, clock_timestamp(), s.org_id, 'manual', gen_random_uuid() FROM s
    ON CONFLICT (schedule_id, fire_at) DO NOTHING
    RETURNING *
), req AS (
    INSERT INTO eve.orchestration_requests
        (id, org_id, user_id, worker_type, prompt, context, config, priority, max_attempts, schedule_id)
    SELECT fire.request_id, s.org_id, %(user_id)s, s.worker_type, s.request_template->>'prompt',
           coalesce(s.request_template->'context', '{}'), coalesce(s.request_template->'config', '{}'),
           coalesce((s.request_template->>'priority')::integer, 0),
           coalesce((SELECT (wt.config->>'max_attempts')::integer FROM eve.worker_types wt
                     WHERE wt.id = s.worker_type), 3),
           s.id
    FROM fire JOIN s ON s.id = fire.schedule_id
    RETURNING id
), touched AS (
    UPDATE eve.schedules sc SET last_fired_at = now() FROM req WHERE sc.id = %(schedule_id)s
)
SELECT id AS request_id FROM req;

-- name: schedule_fires_list
SELECT f.schedule_id, f.fire_at, f.outcome, f.detail, f.request_id, f.fired_at, r.status AS request_status
FROM eve.schedule_fires f
LEFT JOIN eve.orchestration_requests r ON r.id = f.request_id
WHERE f.schedule_id = %(schedule_id)s
ORDER BY f.fired_at DESC
LIMIT %(limit)s;

-- name: prune_schedule_fires
-- A tick's row outlives its request by the same cut-off (`eve db prune`); each schedule
-- keeps its latest fire, which is its "last result".
DELETE FROM eve.schedule_fires f
WHERE f.fired_at < now() - make_interval(secs => %(older_than_seconds)s)
  AND f.fired_at < (SELECT max(l.fired_at) FROM eve.schedule_fires l WHERE l.schedule_id = f.schedule_id);
