-- Human in the loop (#16): an agent asks a person a question and waits for the answer
-- without holding a worker slot.
--
-- The seed's eve.hitl_requests (id, request_id, question, options, status, response,
-- expires_at) plus org_id (row-level security like every tenant table), asked_at and who
-- answered when. Asking inserts the question and its eve.request_waits row (kind
-- 'question', 0009) and sets the request's wait_requested_at, in one transaction: the
-- worker parks the request when the agent exits, and answering or expiring the question
-- resolves that wait (eve.request_resolve_wait), which wakes the request in the same
-- statement. There is no second waiting mechanism here.
--
-- status: pending → answered | expired | cancelled (the request finished — cancelled,
-- failed, timed out — before anyone answered).

CREATE TABLE eve.hitl_requests (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    request_id       uuid NOT NULL REFERENCES eve.orchestration_requests(id) ON DELETE CASCADE,
    org_id           uuid NOT NULL REFERENCES eve.organizations(id),
    question         text NOT NULL CHECK (length(question) BETWEEN 1 AND 2000),
    -- a JSON array of strings; [] means a free-text answer
    options          jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(options) = 'array'),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'answered', 'expired', 'cancelled')),
    -- {"answer": "...", "via": "api" | "slack" | ...} once answered
    response         jsonb,
    asked_at         timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz,
    answered_by      uuid REFERENCES eve.users(id),
    -- the name the agent is told (display name or email at the time of answering)
    answered_by_name text,
    answered_at      timestamptz,
    -- when it stopped being pending (answered, expired or cancelled)
    closed_at        timestamptz,
    CHECK ((status = 'answered') = (response IS NOT NULL AND answered_at IS NOT NULL))
);

-- "Pending in my org", oldest first: the header count, GET /hitl?status=pending, Slack.
CREATE INDEX idx_hitl_pending_org ON eve.hitl_requests (org_id, asked_at) WHERE status = 'pending';
-- Expiry: the scheduler loop looks for the earliest pending expires_at.
CREATE INDEX idx_hitl_pending_expiry ON eve.hitl_requests (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;
-- A request's questions (request view, cancel).
CREATE INDEX idx_hitl_request ON eve.hitl_requests (request_id);

ALTER TABLE eve.hitl_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.hitl_requests FORCE ROW LEVEL SECURITY;
-- Members of the org (and operators) see and answer its questions; a question written as
-- eve_api must belong to a request of the same org (like results and events, 0006).
CREATE POLICY org_isolation ON eve.hitl_requests FOR ALL TO eve_api
    USING ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()))
    WITH CHECK (((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids())) AND EXISTS (
        SELECT 1 FROM eve.orchestration_requests r
        WHERE r.id = hitl_requests.request_id AND r.org_id = hitl_requests.org_id));
CREATE POLICY service_bypass ON eve.hitl_requests FOR ALL TO service_role USING (true);

GRANT SELECT, INSERT, UPDATE ON eve.hitl_requests TO eve_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON eve.hitl_requests TO service_role;

-- A request that finishes (cancelled while waiting, failed, timed out) with a question
-- still open closes it as `cancelled` and its wait with it, in the statement that writes
-- the result — whichever path wrote it (cancel, finish, reaper). Runs with definer rights:
-- the result's writer may be eve_api (a cancel) and already holds the request's row lock.
CREATE FUNCTION eve.hitl_close_on_result() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, eve AS $$
BEGIN
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
    RETURN NULL;
END
$$;

CREATE TRIGGER orchestration_results_close_questions
    AFTER INSERT ON eve.orchestration_results
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION eve.hitl_close_on_result();

REVOKE ALL ON FUNCTION eve.hitl_close_on_result() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eve.hitl_close_on_result() TO eve_api, service_role;
