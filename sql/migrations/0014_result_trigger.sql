-- Performance (#13): one trigger after results are written instead of two, and each of
-- its jobs skipped by an index probe when there is nothing for it to do.
--
-- Every finish (one row or a worker's group of them) fired two statement triggers:
-- 0010's hitl_close_on_result (close a finished request's open question) and 0009's
-- resolve_child_waits (wake a parent waiting on the child, drop a parked session). In
-- the common case — no open question, nobody waiting, no parked session anywhere — they
-- found nothing, yet cost 0.17-0.22 ms per statement in the queue benchmark (a tenth of
-- the group finish): a join of the transition table with each table. Now one function
-- first asks three partial indexes whether any open question, open wait or parked
-- session exists at all, and runs only the parts that can match. What each part does is
-- unchanged, and in the same order (PostgreSQL fired the two triggers by name:
-- questions first, then waits and sessions).
--
-- Under READ COMMITTED the probes see what the old joins saw: rows committed before the
-- statement, plus this transaction's own.
--
-- PostgreSQL 15 compatible, like 0001.

DROP TRIGGER orchestration_results_close_questions ON eve.orchestration_results;
DROP TRIGGER orchestration_results_resolve_waits ON eve.orchestration_results;
DROP FUNCTION eve.hitl_close_on_result();
DROP FUNCTION eve.resolve_child_waits();

-- Parked sessions only (kept ones, 0013, are written after their request's result and
-- never match): the probe and the delete read this small index.
CREATE INDEX idx_request_sessions_parked ON eve.request_sessions (request_id)
    WHERE finished_at IS NULL;

-- Definer rights, as the two it replaces: the result's writer may be eve_api (a cancel),
-- which cannot see sessions, and already holds the request's row lock.
CREATE FUNCTION eve.results_inserted() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, eve AS $$
DECLARE
    r record;
BEGIN
    -- A request that finished with a question still open closes it as `cancelled`, and
    -- its wait with it (was 0010's hitl_close_on_result).
    IF EXISTS (SELECT 1 FROM eve.hitl_requests WHERE status = 'pending') THEN
        WITH closed AS (
            UPDATE eve.hitl_requests h SET status = 'cancelled', closed_at = clock_timestamp()
            FROM inserted i
            WHERE h.request_id = i.request_id AND h.status = 'pending'
            RETURNING h.id, h.request_id, h.org_id, i.status AS result_status
        ), waits AS (
            UPDATE eve.request_waits w
            SET resolved_at = clock_timestamp(), outcome = 'question cancelled: the request ended'
            FROM closed c
            WHERE w.kind = 'question' AND w.ref_id = c.id AND w.resolved_at IS NULL
        )
        INSERT INTO eve.request_events (request_id, org_id, kind, data)
        SELECT request_id, org_id, 'hitl_cancelled',
               jsonb_build_object('question_id', id, 'reason', 'request ' || result_status)
        FROM closed;
    END IF;

    -- A reply-to child's result wakes its parent: the outcome line is the child's id,
    -- status and summary (or error) (was 0009's resolve_child_waits).
    IF EXISTS (SELECT 1 FROM eve.request_waits WHERE resolved_at IS NULL) THEN
        FOR r IN
            SELECT i.request_id, i.status,
                   coalesce(nullif(i.summary, ''), i.error, '') AS text, i.error_code
            FROM inserted i
            JOIN eve.request_waits w ON w.kind = 'child' AND w.ref_id = i.request_id
                                    AND w.resolved_at IS NULL
            ORDER BY w.request_id, i.request_id
        LOOP
            PERFORM eve.request_resolve_wait(
                'child', r.request_id,
                format('child %s %s%s: %s', r.request_id, r.status,
                       CASE WHEN r.error_code IS NOT NULL THEN ' (' || r.error_code || ')' ELSE '' END,
                       left(r.text, 2000)));
        END LOOP;
    END IF;

    -- A request with its result never resumes: its parked session (a transcript can hold
    -- anything the agent saw) goes now, whoever wrote the result (a worker, a cancel).
    IF EXISTS (SELECT 1 FROM eve.request_sessions WHERE finished_at IS NULL) THEN
        DELETE FROM eve.request_sessions s USING inserted i
        WHERE s.request_id = i.request_id AND s.finished_at IS NULL;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER orchestration_results_inserted
    AFTER INSERT ON eve.orchestration_results
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION eve.results_inserted();

REVOKE ALL ON FUNCTION eve.results_inserted() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eve.results_inserted() TO eve_api, service_role;
