-- Named queries of the worker daemon: its registry row and its bounded log.

-- name: worker_register
INSERT INTO eve.workers (id, worker_type, hostname, pid, version, slots, state, started_at, heartbeat_at, sandbox)
VALUES (%(id)s, %(worker_type)s, %(hostname)s, %(pid)s, %(version)s, %(slots)s, 'idle', now(), now(), %(sandbox)s)
ON CONFLICT (id) DO UPDATE
SET worker_type = EXCLUDED.worker_type, hostname = EXCLUDED.hostname, pid = EXCLUDED.pid,
    version = EXCLUDED.version, slots = EXCLUDED.slots, state = 'idle', started_at = now(),
    heartbeat_at = now(), stopped_at = NULL, current_request_id = NULL, sandbox = EXCLUDED.sandbox,
    disk_low = false, drain_requested_at = NULL;

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

-- name: worker_drained
-- `eve up` asks this when one of its workers exits: drained by an operator (eve workers
-- drain, the drain endpoint) means it stays stopped. The mark lasts until the worker registers again.
SELECT drain_requested_at IS NOT NULL AS drained FROM eve.workers WHERE id = %(id)s;
