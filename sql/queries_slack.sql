-- Named queries of the Slack integration (eve/slack/*). Migration 0012 explains the tables.

-- name: slack_org_by_slug
SELECT id, slug FROM eve.organizations WHERE slug = %(slug)s;

-- name: slack_installation_upsert
INSERT INTO eve.slack_installations (org_id, team_id, default_type)
VALUES (%(org_id)s, %(team_id)s, %(default_type)s)
ON CONFLICT (team_id) DO UPDATE
SET org_id = EXCLUDED.org_id, default_type = EXCLUDED.default_type, updated_at = now()
RETURNING id, org_id, team_id, default_type;

-- name: slack_secrets_upsert
INSERT INTO eve.slack_secrets (installation_id, org_id, bot_token, signing_secret, app_token)
VALUES (%(installation_id)s, %(org_id)s, %(bot_token)s, %(signing_secret)s, %(app_token)s)
ON CONFLICT (installation_id) DO UPDATE
SET org_id = EXCLUDED.org_id, bot_token = EXCLUDED.bot_token, signing_secret = EXCLUDED.signing_secret,
    app_token = EXCLUDED.app_token;

-- name: slack_installations_list
SELECT i.id, i.team_id, o.slug AS org, i.default_type, s.app_token IS NOT NULL AS socket_mode, i.created_at
FROM eve.slack_installations i
JOIN eve.organizations o ON o.id = i.org_id
LEFT JOIN eve.slack_secrets s ON s.installation_id = i.id
ORDER BY o.slug, i.team_id;

-- name: slack_installation_delete
DELETE FROM eve.slack_installations WHERE team_id = %(team_id)s RETURNING id;

-- name: slack_installations_api
-- The API's view (eve_api): ciphertexts through the definer function, no app token.
SELECT id, org_id, team_id, default_type, bot_token, signing_secret, NULL::bytea AS app_token
FROM eve.slack_api_installations();

-- name: slack_installations_service
SELECT i.id, i.org_id, i.team_id, i.default_type, s.bot_token, s.signing_secret, s.app_token
FROM eve.slack_installations i JOIN eve.slack_secrets s ON s.installation_id = i.id;

-- name: slack_link_upsert
-- Link a Slack user to a member of the installation's org; no row when the email is not one.
INSERT INTO eve.slack_user_links (installation_id, slack_user_id, org_id, user_id)
SELECT i.id, %(slack_user_id)s, i.org_id, u.id
FROM eve.slack_installations i
JOIN eve.org_members m ON m.org_id = i.org_id
JOIN eve.users u ON u.id = m.user_id AND lower(u.email) = lower(%(email)s)
WHERE i.team_id = %(team_id)s
ON CONFLICT (installation_id, slack_user_id) DO UPDATE SET user_id = EXCLUDED.user_id, created_at = now()
RETURNING slack_user_id, user_id;

-- name: slack_resolve_user
SELECT eve.slack_resolve_user(%(installation_id)s, %(slack_user_id)s, %(email)s) AS user_id;

-- name: slack_thread_insert
-- root_ts given: a continuation posts into the thread it came from (no new root)
INSERT INTO eve.slack_threads (request_id, installation_id, org_id, channel, slack_user, inbound_key, root_ts)
VALUES (%(request_id)s, %(installation_id)s, %(org_id)s, %(channel)s, %(slack_user)s, %(inbound_key)s,
        %(root_ts)s)
ON CONFLICT (inbound_key) DO NOTHING
RETURNING request_id;

-- name: slack_thread_by_request
SELECT request_id, installation_id, channel, root_ts FROM eve.slack_threads WHERE request_id = %(request_id)s;

-- name: slack_threads_due
-- Threads with something to deliver: no root yet, events past the cursor, or a result not
-- posted. Leased for `lease_s` so two delivery loops never post the same message.
WITH due AS (
    SELECT t.request_id
    FROM eve.slack_threads t
    WHERE t.done_at IS NULL AND t.next_try_at <= now()
      AND (t.locked_until IS NULL OR t.locked_until < now())
      AND (t.root_ts IS NULL
           OR EXISTS (SELECT 1 FROM eve.request_events e
                      WHERE e.request_id = t.request_id AND e.id > t.event_cursor)
           OR EXISTS (SELECT 1 FROM eve.orchestration_results r WHERE r.request_id = t.request_id))
    ORDER BY t.next_try_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE eve.slack_threads t
SET locked_until = now() + make_interval(secs => %(lease_s)s)
FROM due WHERE t.request_id = due.request_id
RETURNING t.*;

-- name: slack_thread_state
-- What the thread's messages show: the request, its progress counters and its result.
SELECT r.id, r.org_id, r.worker_type, r.status, r.prompt, r.claimed_by, r.claimed_at, r.started_at,
       r.finished_at, r.created_at, r.reply_to,
       (SELECT count(*) FROM eve.request_events e WHERE e.request_id = r.id AND e.kind = 'tool_call')
           AS tool_calls,
       (SELECT coalesce(max(e.id), 0) FROM eve.request_events e WHERE e.request_id = r.id) AS last_event_id,
       res.status AS result_status, res.summary, res.error, res.error_code, res.cost_usd, res.duration_ms,
       res.id IS NOT NULL AS finished,
       now() AS now
FROM eve.orchestration_requests r
LEFT JOIN eve.orchestration_results res ON res.request_id = r.id
WHERE r.id = %(request_id)s;

-- name: slack_thread_root_posted
WITH t AS (
    UPDATE eve.slack_threads SET root_ts = %(ts)s, failures = 0, last_error = NULL
    WHERE request_id = %(request_id)s
    RETURNING request_id, channel
)
UPDATE eve.orchestration_requests r
SET reply_to = coalesce(r.reply_to, '{}'::jsonb) || jsonb_build_object('thread_ts', %(ts)s::text)
FROM t WHERE r.id = t.request_id;

-- name: slack_thread_progress_posted
UPDATE eve.slack_threads
SET progress_ts = %(ts)s, progress_at = now(), event_cursor = greatest(event_cursor, %(cursor)s),
    failures = 0, last_error = NULL
WHERE request_id = %(request_id)s;

-- name: slack_thread_cursor
UPDATE eve.slack_threads SET event_cursor = greatest(event_cursor, %(cursor)s)
WHERE request_id = %(request_id)s;

-- name: slack_thread_result_posted
UPDATE eve.slack_threads
SET result_ts = %(ts)s, done_at = now(), locked_until = NULL, failures = 0, last_error = NULL,
    event_cursor = greatest(event_cursor, %(cursor)s)
WHERE request_id = %(request_id)s;

-- name: slack_thread_release
UPDATE eve.slack_threads
SET locked_until = NULL, next_try_at = greatest(next_try_at, now() + make_interval(secs => %(delay_s)s))
WHERE request_id = %(request_id)s;

-- name: slack_thread_failed
UPDATE eve.slack_threads
SET locked_until = NULL, failures = failures + 1, last_error = %(error)s,
    next_try_at = now() + make_interval(secs => %(delay_s)s)
WHERE request_id = %(request_id)s
RETURNING failures;

-- name: slack_thread_gave_up
-- Nothing more will be posted in this thread: Slack refuses it for good (the channel is
-- gone, archived, or eve is not in it) or has refused it for about a day. The request is
-- untouched; last_error (written by slack_thread_failed just before) says why it stopped.
UPDATE eve.slack_threads SET done_at = now(), locked_until = NULL WHERE request_id = %(request_id)s;

-- name: slack_thread_questions
-- Open questions of the thread's request not yet posted in it (hitl, 0010).
SELECT q.id, q.question, q.options
FROM eve.hitl_requests q
WHERE q.request_id = %(request_id)s AND q.status = 'pending' AND NOT (q.id = ANY(%(posted)s::uuid[]))
ORDER BY q.asked_at;

-- name: slack_thread_question_posted
UPDATE eve.slack_threads SET posted_questions = array_append(posted_questions, %(question_id)s::uuid),
    failures = 0, last_error = NULL
WHERE request_id = %(request_id)s AND NOT (%(question_id)s::uuid = ANY(posted_questions));
