-- eve-horizon schema, version 3: statements on one request planned on the primary key;
-- NOTIFY only what a listener acts on.
--
-- PostgreSQL 15 compatible, like 0001.

-- ---------------------------------------------------------------------------
-- The reaper's index, keyed on the lease instead of the status
-- ---------------------------------------------------------------------------
--
-- 0001 made it partial on `status IN ('claimed', 'processing')`. That predicate is implied
-- by the filter of every statement that touches one in-flight request (finish, renew,
-- requeue, mark_processing, cancel flag, reap), so the planner could pick a scan of the
-- whole index filtered by id over the primary-key lookup, and did whenever statistics
-- showed few requests in flight (after a bulk insert): a cost that grows with the
-- number of running requests, on every finish. A request holds a lease exactly while it
-- is claimed or processing (claim sets it; finish, requeue and reap clear it), so the
-- same rows are indexed; the reaper's `lease_expires_at < now()` still implies the new
-- predicate, the one-request statements no longer do, and they are left with the pkey.
DROP INDEX eve.idx_requests_lease;
CREATE INDEX idx_requests_lease
    ON eve.orchestration_requests (lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;

-- ---------------------------------------------------------------------------
-- Wake-ups: notify only what a listener acts on, at most once per statement
-- ---------------------------------------------------------------------------
--
-- A transaction that sends NOTIFY takes a cluster-wide lock at commit and holds it
-- through its WAL flush, so notifying commits are serialised (pgbench, 20 clients:
-- insert + pg_notify 3.3-3.9k tps, 9.4k without). 0001 notified for every event row
-- and called a row trigger on every status change, so every claim and every finish
-- paid that. Now:
--   eve_requests  new pending work only: once per INSERT statement (one notification
--                 per worker type among the inserted rows), and when a row becomes
--                 runnable again (requeued, or its last blocker completed), decided by a
--                 WHEN clause that PostgreSQL checks without calling PL/pgSQL;
--   eve_events    only while an API process has live SSE subscribers (it announces
--                 itself in eve.event_listeners), once per statement with the new ids;
--   eve_cancel    as before, with the condition moved into a WHEN clause.

-- Who wants eve_events: one row per API process with live SSE subscribers, kept fresh
-- while it has any. Not tenant data (no org, no user), like eve.workers.
CREATE TABLE eve.event_listeners (
    id          text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
GRANT SELECT ON eve.event_listeners TO eve_api;  -- the event trigger runs as whoever inserts
GRANT SELECT, INSERT, UPDATE, DELETE ON eve.event_listeners TO service_role;

DROP TRIGGER orchestration_requests_notify ON eve.orchestration_requests;
DROP TRIGGER request_events_notify ON eve.request_events;
DROP TRIGGER orchestration_requests_cancel ON eve.orchestration_requests;
DROP FUNCTION eve.notify_request();
DROP FUNCTION eve.notify_event();

-- The payload stays the worker type, so a worker ignores other types without a query.
CREATE FUNCTION eve.notify_requests_inserted() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eve_requests', t.worker_type)
    FROM (SELECT DISTINCT worker_type FROM inserted
          WHERE status = 'pending' AND blocked_by = '{}') t;
    RETURN NULL;
END
$$;

CREATE TRIGGER orchestration_requests_notify_insert
    AFTER INSERT ON eve.orchestration_requests
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION eve.notify_requests_inserted();

CREATE FUNCTION eve.notify_request_runnable() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eve_requests', NEW.worker_type);
    RETURN NULL;
END
$$;

-- Claims and finishes also update status, but the WHEN clause filters them out before
-- any function runs. (PostgreSQL folds identical notifications of one transaction.)
CREATE TRIGGER orchestration_requests_notify_runnable
    AFTER UPDATE OF status, blocked_by ON eve.orchestration_requests
    FOR EACH ROW
    WHEN (NEW.status = 'pending' AND NEW.blocked_by = '{}'
          AND (OLD.status <> 'pending' OR OLD.blocked_by <> '{}'))
    EXECUTE FUNCTION eve.notify_request_runnable();

-- Ids only, in chunks of 400 (well under NOTIFY's 8000-byte payload limit); the hub
-- fetches the rows and subscribers read them under their own identity.
CREATE FUNCTION eve.notify_events_inserted() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM eve.event_listeners WHERE expires_at > now()) THEN
        PERFORM pg_notify('eve_events', json_build_object('ids', array_agg(c.id ORDER BY c.id))::text)
        FROM (SELECT id, (row_number() OVER (ORDER BY id) - 1) / 400 AS chunk FROM inserted) c
        GROUP BY c.chunk;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER request_events_notify
    AFTER INSERT ON eve.request_events
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION eve.notify_events_inserted();

CREATE TRIGGER orchestration_requests_cancel
    AFTER UPDATE OF cancel_requested_at ON eve.orchestration_requests
    FOR EACH ROW
    WHEN (NEW.cancel_requested_at IS NOT NULL AND OLD.cancel_requested_at IS NULL)
    EXECUTE FUNCTION eve.notify_cancel();

GRANT EXECUTE ON FUNCTION eve.notify_requests_inserted(), eve.notify_request_runnable(),
                          eve.notify_events_inserted() TO service_role;

-- The API keeps worker types in memory (eve/worker_types.py); this tells it to read again.
CREATE FUNCTION eve.notify_worker_types_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eve_worker_types', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER worker_types_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON eve.worker_types
    FOR EACH STATEMENT EXECUTE FUNCTION eve.notify_worker_types_changed();
