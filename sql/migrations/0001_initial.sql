-- eve-horizon schema, version 1.
--
-- Targets PostgreSQL 15 and later: nothing here may need a newer server, even though the
-- embedded default is 18. gen_random_uuid() is core since 13; NULLS NOT DISTINCT and
-- MERGE (15) are fine, anything from 16+ is not.
--
-- Roles are cluster-wide, so they are created only when missing:
--   eve_api      the API's role: no BYPASSRLS, row-level security decides what exists.
--   service_role workers and the reaper (the seed's bypass role).
-- Both are NOLOGIN group roles; a deployment grants them to its login users
-- (e.g. GRANT eve_api TO eve_api_login). Connections use SET ROLE per transaction.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'eve_api') THEN
        CREATE ROLE eve_api NOLOGIN NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN BYPASSRLS;
    END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS eve;
GRANT USAGE ON SCHEMA eve TO eve_api, service_role;

-- ---------------------------------------------------------------------------
-- Tenancy
-- ---------------------------------------------------------------------------

CREATE TABLE eve.organizations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    settings    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE eve.users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL UNIQUE,
    display_name  text,
    is_operator   boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE eve.org_members (
    org_id      uuid NOT NULL REFERENCES eve.organizations(id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES eve.users(id) ON DELETE CASCADE,
    role        text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX org_members_user_idx ON eve.org_members (user_id);

CREATE TABLE eve.api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid NOT NULL REFERENCES eve.organizations(id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES eve.users(id) ON DELETE CASCADE,
    name          text NOT NULL DEFAULT '',
    prefix        text NOT NULL UNIQUE,
    secret_hash   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- ---------------------------------------------------------------------------
-- Worker registry (platform-wide, not tenant data)
-- ---------------------------------------------------------------------------

CREATE TABLE eve.worker_types (
    id            text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name          text NOT NULL,
    docker_image  text NOT NULL,
    capabilities  text[] NOT NULL DEFAULT '{}',
    -- defaults for requests of this type: variant, timeout_ms, skills, max_attempts, allowed_tools
    config        jsonb NOT NULL DEFAULT '{}'
);

INSERT INTO eve.worker_types (id, name, docker_image, capabilities, config) VALUES
    ('general', 'General Purpose', 'eve/worker-general:latest', '{git,code}',
     '{"variant": "mclaude", "timeout_ms": 1800000, "max_attempts": 3, "skills": ["general", "orchestration"], "allowed_tools": ["Bash", "Read", "Write", "Edit", "Glob", "Grep"]}'),
    ('code-review', 'Code Reviewer', 'eve/worker-code-review:latest', '{git,github-api}',
     '{"variant": "mclaude", "timeout_ms": 1800000, "max_attempts": 3, "skills": ["code-review", "orchestration"], "allowed_tools": ["Bash", "Read", "Glob", "Grep"]}'),
    ('playwright', 'Web Automation', 'eve/worker-playwright:latest', '{browser,screenshot}',
     '{"variant": "mclaude", "timeout_ms": 1800000, "max_attempts": 3, "skills": ["general"], "allowed_tools": ["Bash", "Read", "Write"]}'),
    ('data', 'Data Analysis', 'eve/worker-data:latest', '{python,pandas}',
     '{"variant": "mclaude", "timeout_ms": 1800000, "max_attempts": 3, "skills": ["general"], "allowed_tools": ["Bash", "Read", "Write", "Edit"]}');

CREATE TABLE eve.workers (
    id                  text PRIMARY KEY,
    worker_type         text NOT NULL REFERENCES eve.worker_types(id),
    hostname            text NOT NULL,
    pid                 integer NOT NULL,
    version             text NOT NULL,
    slots               integer NOT NULL DEFAULT 1,
    state               text NOT NULL DEFAULT 'idle' CHECK (state IN ('idle', 'busy', 'draining', 'stopped')),
    current_request_id  uuid,
    started_at          timestamptz NOT NULL DEFAULT now(),
    heartbeat_at        timestamptz NOT NULL DEFAULT now(),
    stopped_at          timestamptz
);
CREATE INDEX workers_type_idx ON eve.workers (worker_type, state);

CREATE TABLE eve.worker_logs (
    id          bigserial PRIMARY KEY,
    worker_id   text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    level       text NOT NULL DEFAULT 'info',
    message     text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX worker_logs_worker_idx ON eve.worker_logs (worker_id, id);

-- ---------------------------------------------------------------------------
-- The queue
-- ---------------------------------------------------------------------------

CREATE TABLE eve.orchestration_requests (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at           timestamptz NOT NULL DEFAULT now(),
    -- tenant isolation
    org_id               uuid NOT NULL REFERENCES eve.organizations(id),
    user_id              uuid NOT NULL REFERENCES eve.users(id),
    -- routing
    worker_type          text NOT NULL DEFAULT 'general' REFERENCES eve.worker_types(id),
    status               text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'claimed', 'processing', 'waiting',
                                           'completed', 'failed', 'cancelled')),
    -- the work
    prompt               text NOT NULL CHECK (length(prompt) > 0),
    context              jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(context) = 'object'),
    config               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    workspace            text,
    priority             integer NOT NULL DEFAULT 0,
    -- claim tracking and leases
    claimed_at           timestamptz,
    claimed_by           text,
    attempts             integer NOT NULL DEFAULT 0,
    max_attempts         integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    run_after            timestamptz NOT NULL DEFAULT now(),
    lease_expires_at     timestamptz,
    heartbeat_at         timestamptz,
    started_at           timestamptz,
    finished_at          timestamptz,
    cancel_requested_at  timestamptz,
    last_error           text,
    -- graph
    replay_of            uuid REFERENCES eve.orchestration_requests(id),
    parent_id            uuid REFERENCES eve.orchestration_requests(id),
    blocked_by           uuid[] NOT NULL DEFAULT '{}',
    reply_to             jsonb
);

-- The seed's poll index, extended to the claim query's ORDER BY. Partial, so it holds
-- only the pending rows however long the history grows.
CREATE INDEX idx_requests_poll
    ON eve.orchestration_requests (worker_type, priority DESC, run_after, created_at)
    WHERE status = 'pending';
-- The reaper's scan: only in-flight rows.
CREATE INDEX idx_requests_lease
    ON eve.orchestration_requests (lease_expires_at)
    WHERE status IN ('claimed', 'processing');
-- Newest-first listings with keyset pagination, per org and overall.
CREATE INDEX idx_requests_org_created ON eve.orchestration_requests (org_id, created_at DESC, id DESC);
CREATE INDEX idx_requests_created ON eve.orchestration_requests (created_at DESC, id DESC);
-- "completed/failed in the last hour" for queue stats.
CREATE INDEX idx_requests_finished ON eve.orchestration_requests (worker_type, finished_at)
    WHERE finished_at IS NOT NULL;
-- Dependents of a request (blocked_by), only while they wait.
CREATE INDEX idx_requests_blocked ON eve.orchestration_requests USING gin (blocked_by)
    WHERE status = 'pending' AND blocked_by <> '{}';

-- Completed rows stay as history; vacuum the hot table more eagerly than the default.
ALTER TABLE eve.orchestration_requests SET (autovacuum_vacuum_scale_factor = 0.02,
                                            autovacuum_analyze_scale_factor = 0.02);

CREATE TABLE eve.orchestration_results (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    request_id   uuid NOT NULL UNIQUE REFERENCES eve.orchestration_requests(id) ON DELETE CASCADE,
    org_id       uuid NOT NULL,
    status       text NOT NULL CHECK (status IN ('success', 'failed', 'timeout', 'cancelled')),
    output       jsonb,
    summary      text,
    duration_ms  integer,
    tokens_used  integer,
    cost_usd     numeric(10, 6),
    error        text,
    error_code   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE eve.request_events (
    id          bigserial PRIMARY KEY,
    request_id  uuid NOT NULL REFERENCES eve.orchestration_requests(id) ON DELETE CASCADE,
    org_id      uuid NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX request_events_request_idx ON eve.request_events (request_id, id);

-- ---------------------------------------------------------------------------
-- Who is asking: helpers for RLS policies
-- ---------------------------------------------------------------------------

-- The caller's user id, set per transaction by the API with set_config('eve.user_id', ..., true).
CREATE FUNCTION eve.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('eve.user_id', true), '')::uuid $$;

-- SECURITY DEFINER so policies can read users/org_members without recursing into their RLS.
CREATE FUNCTION eve.is_operator() RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, eve
    AS $$ SELECT coalesce((SELECT is_operator FROM eve.users WHERE id = eve.current_user_id()), false) $$;

CREATE FUNCTION eve.user_org_ids() RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, eve
    AS $$ SELECT org_id FROM eve.org_members WHERE user_id = eve.current_user_id() $$;

CREATE FUNCTION eve.can_see_org(p_org uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, eve
    AS $$ SELECT eve.is_operator() OR p_org IN (SELECT eve.user_org_ids()) $$;

-- API-key lookup happens before anyone is authenticated, so it cannot go through RLS:
-- this definer function returns just what the token exchange needs, by public prefix.
CREATE FUNCTION eve.lookup_api_key(p_prefix text)
    RETURNS TABLE (key_id uuid, secret_hash text, org_id uuid, org_slug text, user_id uuid,
                   role text, is_operator boolean, revoked boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, eve
    AS $$
        SELECT k.id, k.secret_hash, k.org_id, o.slug, k.user_id,
               coalesce(m.role, 'member'), u.is_operator, k.revoked_at IS NOT NULL
        FROM eve.api_keys k
        JOIN eve.organizations o ON o.id = k.org_id
        JOIN eve.users u ON u.id = k.user_id
        LEFT JOIN eve.org_members m ON m.org_id = k.org_id AND m.user_id = k.user_id
        WHERE k.prefix = p_prefix
    $$;

CREATE FUNCTION eve.touch_api_key(p_key_id uuid) RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, eve
    AS $$ UPDATE eve.api_keys SET last_used_at = now() WHERE id = p_key_id $$;

REVOKE ALL ON FUNCTION eve.lookup_api_key(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION eve.touch_api_key(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eve.lookup_api_key(text), eve.touch_api_key(uuid) TO eve_api;

-- ---------------------------------------------------------------------------
-- Row-level security: enabled and forced on every tenant table.
-- ---------------------------------------------------------------------------

ALTER TABLE eve.organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON eve.organizations FOR SELECT TO eve_api
    USING (eve.can_see_org(id));

ALTER TABLE eve.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.users FORCE ROW LEVEL SECURITY;
CREATE POLICY user_isolation ON eve.users FOR SELECT TO eve_api
    USING (id = eve.current_user_id() OR eve.is_operator()
           OR id IN (SELECT user_id FROM eve.org_members WHERE org_id IN (SELECT eve.user_org_ids())));

ALTER TABLE eve.org_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.org_members FORCE ROW LEVEL SECURITY;
CREATE POLICY member_isolation ON eve.org_members FOR SELECT TO eve_api
    USING (eve.can_see_org(org_id));

ALTER TABLE eve.api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY key_isolation ON eve.api_keys FOR SELECT TO eve_api
    USING (user_id = eve.current_user_id() OR eve.is_operator());

ALTER TABLE eve.orchestration_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.orchestration_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON eve.orchestration_requests FOR ALL TO eve_api
    USING (eve.can_see_org(org_id))
    WITH CHECK (eve.can_see_org(org_id));

ALTER TABLE eve.orchestration_results ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.orchestration_results FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON eve.orchestration_results FOR ALL TO eve_api
    USING (eve.can_see_org(org_id))
    WITH CHECK (eve.can_see_org(org_id));

ALTER TABLE eve.request_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.request_events FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON eve.request_events FOR ALL TO eve_api
    USING (eve.can_see_org(org_id))
    WITH CHECK (eve.can_see_org(org_id));

-- The seed's service bypass, spelled out even though service_role has BYPASSRLS, so the
-- intent survives a deployment that creates the role without it.
CREATE POLICY service_bypass ON eve.organizations FOR ALL TO service_role USING (true);
CREATE POLICY service_bypass ON eve.users FOR ALL TO service_role USING (true);
CREATE POLICY service_bypass ON eve.org_members FOR ALL TO service_role USING (true);
CREATE POLICY service_bypass ON eve.api_keys FOR ALL TO service_role USING (true);
CREATE POLICY service_bypass ON eve.orchestration_requests FOR ALL TO service_role USING (true);
CREATE POLICY service_bypass ON eve.orchestration_results FOR ALL TO service_role USING (true);
CREATE POLICY service_bypass ON eve.request_events FOR ALL TO service_role USING (true);

GRANT SELECT ON eve.organizations, eve.users, eve.org_members, eve.api_keys TO eve_api;
GRANT SELECT, INSERT, UPDATE ON eve.orchestration_requests, eve.orchestration_results TO eve_api;
GRANT SELECT, INSERT ON eve.request_events TO eve_api;
GRANT SELECT ON eve.worker_types, eve.workers, eve.worker_logs TO eve_api;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA eve TO eve_api;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA eve TO service_role;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA eve TO service_role;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA eve TO service_role;

-- ---------------------------------------------------------------------------
-- Wake-ups
-- ---------------------------------------------------------------------------

-- Workers LISTEN on eve_requests; the payload is the worker type so each worker can
-- ignore other types' inserts without a query.
CREATE FUNCTION eve.notify_request() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'pending' THEN
        PERFORM pg_notify('eve_requests', NEW.worker_type);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER orchestration_requests_notify
    AFTER INSERT OR UPDATE OF status ON eve.orchestration_requests
    FOR EACH ROW EXECUTE FUNCTION eve.notify_request();

-- The API's SSE fan-out LISTENs on eve_events: a small payload (ids only) keeps well
-- under NOTIFY's 8000-byte limit; subscribers fetch the row under their own identity.
CREATE FUNCTION eve.notify_event() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eve_events',
        json_build_object('id', NEW.id, 'request_id', NEW.request_id, 'org_id', NEW.org_id)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER request_events_notify
    AFTER INSERT ON eve.request_events
    FOR EACH ROW EXECUTE FUNCTION eve.notify_event();

-- Cancels reach the worker that runs the request without waiting for its heartbeat.
CREATE FUNCTION eve.notify_cancel() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.cancel_requested_at IS NOT NULL AND OLD.cancel_requested_at IS NULL THEN
        PERFORM pg_notify('eve_cancel', NEW.id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER orchestration_requests_cancel
    AFTER UPDATE OF cancel_requested_at ON eve.orchestration_requests
    FOR EACH ROW EXECUTE FUNCTION eve.notify_cancel();

-- ---------------------------------------------------------------------------
-- The seed's claim function, kept working (with leases and attempts added).
-- ---------------------------------------------------------------------------

CREATE FUNCTION eve.claim_next_request(p_worker_type text, p_worker_id text,
                                       p_lease interval DEFAULT interval '60 seconds')
    RETURNS eve.orchestration_requests
    LANGUAGE plpgsql AS $$
DECLARE
    v_request eve.orchestration_requests;
BEGIN
    SELECT * INTO v_request
    FROM eve.orchestration_requests
    WHERE worker_type = p_worker_type
      AND status = 'pending'
      AND run_after <= now()
      AND blocked_by = '{}'
    ORDER BY priority DESC, run_after, created_at
    FOR UPDATE SKIP LOCKED
    LIMIT 1;

    IF v_request.id IS NULL THEN
        RETURN NULL;
    END IF;

    UPDATE eve.orchestration_requests
    SET status = 'claimed',
        claimed_at = now(),
        claimed_by = p_worker_id,
        attempts = attempts + 1,
        heartbeat_at = now(),
        lease_expires_at = now() + p_lease
    WHERE id = v_request.id
    RETURNING * INTO v_request;

    INSERT INTO eve.request_events (request_id, org_id, kind, data)
    VALUES (v_request.id, v_request.org_id, 'claimed',
            jsonb_build_object('worker_id', p_worker_id, 'attempt', v_request.attempts));

    RETURN v_request;
END
$$;
