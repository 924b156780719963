-- Slack thread continuations (#20 item 3): a mention in a thread eve owns continues the
-- conversation of the thread's last request.
--
-- 1. A finished request whose reply_to is a Slack thread keeps its final turn's Claude Code
--    session (eve.request_sessions with finished_at set). The worker stores it right after
--    the result is written, so the result trigger of 0009 (which drops a parked session
--    when the result arrives) never sees it. Bounded: when a continuation stores its own
--    session, the one it continued is deleted (a thread keeps one, its latest), and the
--    worker's reaper deletes kept sessions older than `kept_session_days` (default 7).
-- 2. A continuation names the request it continues in eve.request_continuations, a row
--    inserted with the request in one transaction. A table, not a context key: context is
--    free JSON the agent reads and any caller may set, while this row is checked by RLS
--    (same org, and the creating user must see the previous request) and is only read by
--    the worker, which resumes the previous session when it claims the continuation.

ALTER TABLE eve.request_sessions
    -- NULL: a parked request's session (0009); set: a finished request's, kept to be continued
    ADD COLUMN finished_at timestamptz;
CREATE INDEX idx_request_sessions_finished ON eve.request_sessions (finished_at)
    WHERE finished_at IS NOT NULL;

CREATE TABLE eve.request_continuations (
    request_id  uuid PRIMARY KEY REFERENCES eve.orchestration_requests(id) ON DELETE CASCADE,
    org_id      uuid NOT NULL,
    continues   uuid NOT NULL REFERENCES eve.orchestration_requests(id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (continues <> request_id)
);
CREATE INDEX idx_request_continuations_continues ON eve.request_continuations (continues);

ALTER TABLE eve.request_continuations ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.request_continuations FORCE ROW LEVEL SECURITY;
-- The subqueries run with the caller's RLS on orchestration_requests: both requests must
-- be visible to the creating user and belong to the row's org.
CREATE POLICY org_isolation ON eve.request_continuations FOR ALL TO eve_api
    USING (eve.can_see_org(org_id))
    WITH CHECK (eve.can_see_org(org_id)
        AND EXISTS (SELECT 1 FROM eve.orchestration_requests r
                    WHERE r.id = request_continuations.request_id AND r.org_id = request_continuations.org_id)
        AND EXISTS (SELECT 1 FROM eve.orchestration_requests p
                    WHERE p.id = request_continuations.continues AND p.org_id = request_continuations.org_id));
CREATE POLICY service_bypass ON eve.request_continuations FOR ALL TO service_role USING (true);

GRANT SELECT, INSERT ON eve.request_continuations TO eve_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON eve.request_continuations TO service_role;

-- A mention names its thread by (channel, thread ts): find the thread's requests.
CREATE INDEX slack_threads_root_idx ON eve.slack_threads (installation_id, channel, root_ts)
    WHERE root_ts IS NOT NULL;
