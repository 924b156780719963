-- A waiting request that ends without resuming (cancelled, alone or with its parent) left
-- its workspace on the host that parked it: its stored session goes with the result (0014),
-- but the directory under the worker's workspace root stayed until a start-up sweep, past
-- keep_failed_s. Workers already LISTEN on eve_cancel; this sends the id there when a
-- waiting request becomes final, and a worker that holds no slot for it removes the
-- directory once it has read that the request is final (daemons/worker/daemon.py). What a
-- worker missed (not listening yet, the database away) it catches up with when its listener
-- reconnects, and at start-up.
--
-- The WHEN clause is checked without calling PL/pgSQL, so claims and finishes of running
-- requests (never 'waiting' before) pay nothing. PostgreSQL 15 compatible, like 0001.

CREATE FUNCTION eve.notify_waiting_finished() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eve_cancel', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER orchestration_requests_waiting_finished
    AFTER UPDATE OF status ON eve.orchestration_requests
    FOR EACH ROW
    WHEN (OLD.status = 'waiting' AND NEW.status IN ('completed', 'failed', 'cancelled'))
    EXECUTE FUNCTION eve.notify_waiting_finished();

-- the writer is the API (a cancel: eve_api) or a worker (service_role)
GRANT EXECUTE ON FUNCTION eve.notify_waiting_finished() TO eve_api, service_role;
