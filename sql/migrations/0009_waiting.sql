-- Waiting and wake-up: one mechanism for orchestration (reply-to children, #15) and
-- human-in-the-loop questions (#16).
--
-- A running agent asks to wait (`eve wait` after creating reply-to children, or `eve ask`):
-- the API sets `wait_requested_at` on its request. Each thing it waits for is a row in
-- eve.request_waits (a child request, or a question), created when the child or the
-- question is created, so one that finishes before the agent even exits is not missed.
-- When the agent exits, the worker stores the Claude Code session (eve.request_sessions)
-- and parks the request (eve.request_park): `waiting` with no lease and no slot — or
-- straight back to `pending` when everything it waits for is already resolved.
-- Resolving a wait (a child's result is written; a question is answered or expires) and
-- waking the request happen in the statement that resolves it (eve.request_resolve_wait),
-- so no wake-up is lost. A woken request is `pending` with `resumes` + 1; the worker that
-- claims it resumes the stored session with the outcomes of the waits resolved and not
-- yet delivered (`delivered_at`), and marks them delivered when that turn ends.
--
-- Lost wake-ups: park and resolve both lock the waiting request's row before they look at
-- its waits, and each looks in a statement that starts after it holds the lock (functions
-- below are VOLATILE: every statement takes a new snapshot), so whichever runs second sees
-- what the first committed.

ALTER TABLE eve.orchestration_requests
    -- set by the API when the agent asks to wait; cleared when the worker parks it
    ADD COLUMN wait_requested_at timestamptz,
    -- how many times it was woken (the resume marker: > 0 and a session row => resume)
    ADD COLUMN resumes integer NOT NULL DEFAULT 0,
    -- when it last went to `waiting` (durations exclude the time spent there)
    ADD COLUMN parked_at timestamptz;

-- Children of a request (trees, cancel cascade, tree limits).
CREATE INDEX idx_requests_parent ON eve.orchestration_requests (parent_id)
    WHERE parent_id IS NOT NULL;

CREATE TABLE eve.request_waits (
    id           bigserial PRIMARY KEY,
    -- the request that waits
    request_id   uuid NOT NULL REFERENCES eve.orchestration_requests(id) ON DELETE CASCADE,
    org_id       uuid NOT NULL,
    -- what it waits for: a child request (reply-to parent) or a question (eve.hitl_requests)
    kind         text NOT NULL CHECK (kind IN ('child', 'question')),
    ref_id       uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    -- the line the resumed agent reads about it
    outcome      text,
    -- set when a resumed turn that was told the outcome ended
    delivered_at timestamptz,
    UNIQUE (kind, ref_id)
);
CREATE INDEX idx_request_waits_open ON eve.request_waits (request_id) WHERE resolved_at IS NULL;
CREATE INDEX idx_request_waits_undelivered ON eve.request_waits (request_id)
    WHERE resolved_at IS NOT NULL AND delivered_at IS NULL;

-- The stored Claude Code session of a request that waited. Workers only: a transcript can
-- hold anything the agent saw, so the API role gets no grant and no policy (RLS denies).
CREATE TABLE eve.request_sessions (
    request_id         uuid PRIMARY KEY REFERENCES eve.orchestration_requests(id) ON DELETE CASCADE,
    org_id             uuid NOT NULL,
    session_id         text NOT NULL,
    -- the session's transcript file (gzip), restored under the variant's config dir
    transcript         bytea NOT NULL,
    -- where Claude Code keeps it, relative to the variant's config dir
    -- (projects/<escaped cwd>/<session id>.jsonl)
    transcript_path    text,
    -- the workspace as a compressed tar, NULL when it was over the cap (workspace_kept false)
    workspace_archive  bytea,
    workspace_bytes    bigint,
    workspace_kept     boolean NOT NULL DEFAULT true,
    -- a worker on the same host reuses the directory instead of unpacking the archive
    host               text,
    workspace_path     text,
    -- totals across turns (the final result reports them)
    turns              integer NOT NULL DEFAULT 1,
    active_ms          bigint NOT NULL DEFAULT 0,
    tokens_used        bigint NOT NULL DEFAULT 0,
    cost_usd           numeric(12, 6) NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE eve.request_waits ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.request_waits FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON eve.request_waits FOR ALL TO eve_api
    USING ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()))
    WITH CHECK ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()));
CREATE POLICY service_bypass ON eve.request_waits FOR ALL TO service_role USING (true);

ALTER TABLE eve.request_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.request_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY service_bypass ON eve.request_sessions FOR ALL TO service_role USING (true);

-- The API creates waits (a reply-to child, a question) and reads them; resolving goes
-- through eve.request_resolve_wait.
GRANT SELECT, INSERT ON eve.request_waits TO eve_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON eve.request_waits, eve.request_sessions TO service_role;
GRANT USAGE, SELECT ON SEQUENCE eve.request_waits_id_seq TO eve_api, service_role;

-- ---------------------------------------------------------------------------
-- Request tokens (#15): the agent's own credential, EVE_API_TOKEN
-- ---------------------------------------------------------------------------
-- The worker makes one per attempt (no JWT_SECRET: a random secret, stored hashed like
-- API keys) and revokes it when the attempt ends. The API looks it up through the
-- definer function below, which answers only while the request is still running that
-- attempt, so a token outlives neither its attempt nor its request, whatever the worker
-- does. The caller it yields is scoped to the request's own tree (eve.auth.Caller.request_id).
CREATE TABLE eve.request_tokens (
    id           bigserial PRIMARY KEY,
    request_id   uuid NOT NULL REFERENCES eve.orchestration_requests(id) ON DELETE CASCADE,
    org_id       uuid NOT NULL,
    attempt      integer NOT NULL,
    prefix       text NOT NULL UNIQUE,
    secret_hash  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX idx_request_tokens_request ON eve.request_tokens (request_id) WHERE revoked_at IS NULL;

ALTER TABLE eve.request_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.request_tokens FORCE ROW LEVEL SECURITY;
-- No policy for eve_api: the API reads tokens only through eve.lookup_request_token.
CREATE POLICY service_bypass ON eve.request_tokens FOR ALL TO service_role USING (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON eve.request_tokens TO service_role;
GRANT USAGE, SELECT ON SEQUENCE eve.request_tokens_id_seq TO service_role;

-- The token's request and identity, valid only while that attempt runs (not revoked,
-- the request claimed or processing at the same attempt). An unknown prefix returns
-- no row (the caller still spends a hash comparison).
CREATE FUNCTION eve.lookup_request_token(p_prefix text)
    RETURNS TABLE (request_id uuid, secret_hash text, org_id uuid, user_id uuid, role text, valid boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, eve
    AS $$
        SELECT t.request_id, t.secret_hash, r.org_id, r.user_id, coalesce(m.role, 'member'),
               t.revoked_at IS NULL AND r.status IN ('claimed', 'processing') AND r.attempts = t.attempt
        FROM eve.request_tokens t
        JOIN eve.orchestration_requests r ON r.id = t.request_id
        LEFT JOIN eve.org_members m ON m.org_id = r.org_id AND m.user_id = r.user_id
        WHERE t.prefix = p_prefix
    $$;
REVOKE ALL ON FUNCTION eve.lookup_request_token(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eve.lookup_request_token(text) TO eve_api;

-- ---------------------------------------------------------------------------
-- Wake, resolve, park
-- ---------------------------------------------------------------------------

-- Back to pending when the request waits and nothing it waits for is open. The caller
-- holds the row lock (resolve and park take it first).
CREATE FUNCTION eve.request_wake_if_ready(p_id uuid) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, eve AS $$
DECLARE
    v_org uuid;
BEGIN
    UPDATE eve.orchestration_requests r
    SET status = 'pending', run_after = now(), resumes = r.resumes + 1
    WHERE r.id = p_id AND r.status = 'waiting'
      AND NOT EXISTS (SELECT 1 FROM eve.request_waits w
                      WHERE w.request_id = r.id AND w.resolved_at IS NULL)
    RETURNING r.org_id INTO v_org;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO eve.request_events (request_id, org_id, kind, data)
    SELECT p_id, v_org, 'woken',
           jsonb_build_object('resolved', coalesce(jsonb_agg(jsonb_build_object('kind', w.kind, 'id', w.ref_id)
                                                              ORDER BY w.resolved_at), '[]'))
    FROM eve.request_waits w
    WHERE w.request_id = p_id AND w.resolved_at IS NOT NULL AND w.delivered_at IS NULL;
    RETURN true;
END
$$;

-- Resolve one wait (kind + the child's or question's id) with the line the agent will
-- read, and wake its request if that was the last open one. Returns the waiting
-- request's id, or NULL when there was no such open wait (already resolved: a second
-- answer, a duplicate delivery, or an org the caller does not see). Callable by the API
-- (answers, cancels) and workers.
CREATE FUNCTION eve.request_resolve_wait(p_kind text, p_ref uuid, p_outcome text) RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, eve AS $$
DECLARE
    v_request uuid;
    v_org uuid;
BEGIN
    SELECT request_id, org_id INTO v_request, v_org FROM eve.request_waits
    WHERE kind = p_kind AND ref_id = p_ref AND resolved_at IS NULL;
    -- Definer rights bypass RLS: an API caller may only resolve waits of an org it sees
    -- (workers log in with service_role and may resolve any).
    IF v_request IS NULL OR NOT (pg_has_role(session_user, 'service_role', 'MEMBER')
                                 OR eve.can_see_org(v_org)) THEN
        RETURN NULL;
    END IF;
    -- Lock order: the waiting request first, then its wait (park does the same).
    PERFORM 1 FROM eve.orchestration_requests WHERE id = v_request FOR UPDATE;
    UPDATE eve.request_waits SET resolved_at = clock_timestamp(), outcome = p_outcome
    WHERE kind = p_kind AND ref_id = p_ref AND resolved_at IS NULL;
    IF NOT FOUND THEN
        RETURN NULL;  -- resolved concurrently
    END IF;
    PERFORM eve.request_wake_if_ready(v_request);
    RETURN v_request;
END
$$;

-- Park a request whose agent exited after asking to wait: `waiting` (no lease, no worker)
-- or, if everything it waits for is already resolved, straight back to `pending` to resume.
-- Only the worker holding it can park it. Returns the new status, NULL if not held.
CREATE FUNCTION eve.request_park(p_id uuid, p_worker text) RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, eve AS $$
DECLARE
    v_org uuid;
    v_open jsonb;
BEGIN
    PERFORM 1 FROM eve.orchestration_requests
    WHERE id = p_id AND claimed_by = p_worker AND status IN ('claimed', 'processing')
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE eve.orchestration_requests
    SET status = 'waiting', claimed_by = NULL, lease_expires_at = NULL, heartbeat_at = NULL,
        wait_requested_at = NULL, parked_at = now(),
        -- a turn that ended by waiting is not a failed attempt: the resumed turn's claim
        -- counts it again, so waiting never eats the retry budget
        attempts = greatest(attempts - 1, 0)
    WHERE id = p_id
    RETURNING org_id INTO v_org;
    -- the turn is over: its agent's credential dies with it (the resumed turn gets a new one)
    UPDATE eve.request_tokens SET revoked_at = now() WHERE request_id = p_id AND revoked_at IS NULL;
    SELECT coalesce(jsonb_agg(jsonb_build_object('kind', kind, 'id', ref_id) ORDER BY id), '[]')
    INTO v_open
    FROM eve.request_waits WHERE request_id = p_id AND resolved_at IS NULL;
    INSERT INTO eve.request_events (request_id, org_id, kind, data)
    VALUES (p_id, v_org, 'waiting', jsonb_build_object('waiting_for', v_open));
    IF eve.request_wake_if_ready(p_id) THEN
        RETURN 'pending';
    END IF;
    RETURN 'waiting';
END
$$;

-- A reply-to child's result wakes its parent, in the statement that writes the result
-- (finish_request, finish_many, fail_dependents, finish_unclaimed, a cancel): the outcome
-- line is the child's id, status and summary (or error).
CREATE FUNCTION eve.resolve_child_waits() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, eve AS $$
DECLARE
    r record;
BEGIN
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
    RETURN NULL;
END
$$;

CREATE TRIGGER orchestration_results_resolve_waits
    AFTER INSERT ON eve.orchestration_results
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION eve.resolve_child_waits();

REVOKE ALL ON FUNCTION eve.request_wake_if_ready(uuid), eve.request_resolve_wait(text, uuid, text),
                       eve.request_park(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eve.request_resolve_wait(text, uuid, text) TO eve_api, service_role;
GRANT EXECUTE ON FUNCTION eve.request_wake_if_ready(uuid), eve.request_park(uuid, text),
                          eve.resolve_child_waits() TO service_role;
GRANT EXECUTE ON FUNCTION eve.resolve_child_waits() TO eve_api;

