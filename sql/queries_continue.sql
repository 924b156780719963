-- Named queries of thread continuations (migration 0013): kept sessions, continuation links.

-- name: session_keep
-- A finished request's final session, kept to be continued (written after its result, so
-- the result trigger does not drop it); the session it continued goes (one per thread).
WITH gone AS (
    DELETE FROM eve.request_sessions s USING eve.request_continuations c
    WHERE c.request_id = %(request_id)s AND s.request_id = c.continues AND s.finished_at IS NOT NULL
)
INSERT INTO eve.request_sessions
    (request_id, org_id, session_id, transcript, transcript_path, workspace_archive, workspace_bytes,
     workspace_kept, host, workspace_path, turns, active_ms, tokens_used, cost_usd, finished_at)
VALUES (%(request_id)s, %(org_id)s, %(session_id)s, %(transcript)s, %(transcript_path)s, %(archive)s,
        %(archive_bytes)s, %(kept)s, %(host)s, %(workspace_path)s, 1, %(active_ms)s, %(tokens)s, %(cost)s, now())
ON CONFLICT (request_id) DO UPDATE
SET session_id = EXCLUDED.session_id, transcript = EXCLUDED.transcript,
    transcript_path = EXCLUDED.transcript_path, workspace_archive = EXCLUDED.workspace_archive,
    workspace_bytes = EXCLUDED.workspace_bytes, workspace_kept = EXCLUDED.workspace_kept,
    host = EXCLUDED.host, workspace_path = EXCLUDED.workspace_path, finished_at = now(), updated_at = now();

-- name: continuation_get
-- The request a new request continues and that one's kept session (NULL columns: none kept).
SELECT c.continues, s.session_id, s.transcript, s.workspace_archive, s.host, s.workspace_path
FROM eve.request_continuations c
LEFT JOIN eve.request_sessions s ON s.request_id = c.continues AND s.finished_at IS NOT NULL
WHERE c.request_id = %(request_id)s;

-- name: sessions_kept_expire
DELETE FROM eve.request_sessions
WHERE finished_at IS NOT NULL AND finished_at < now() - make_interval(secs => %(max_age_s)s)
RETURNING request_id;

-- name: continuation_insert
INSERT INTO eve.request_continuations (request_id, org_id, continues)
VALUES (%(request_id)s, %(org_id)s, %(continues)s);

-- name: slack_thread_last_request
-- The latest request of a thread eve owns (the one a mention in it continues), as the caller.
SELECT t.request_id FROM eve.slack_threads t
WHERE t.installation_id = %(installation_id)s AND t.channel = %(channel)s AND t.root_ts = %(thread_ts)s
ORDER BY t.created_at DESC, t.request_id DESC
LIMIT 1;

-- name: slack_inbound_seen
SELECT 1 FROM eve.slack_threads WHERE inbound_key = %(key)s;
