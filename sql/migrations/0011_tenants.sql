-- Tenants as first-class (#19): fair claim across orgs, per-org limits and budgets,
-- self-service keys and members with an audit log, per-org secrets.
--
-- PostgreSQL 15 compatible, like 0001.

-- ---------------------------------------------------------------------------
-- Fair claim: round-robin across orgs within a worker type and priority
-- ---------------------------------------------------------------------------
--
-- Every pending request carries `fair_seq`, its place in its lane (worker type,
-- priority). A new request takes the larger of
--   * one past its org's last pending request in that lane, and
--   * the lane's head: the smallest fair_seq a claim would take now;
-- and the claim orders by (priority DESC, fair_seq, run_after, created_at). So an org
-- that queued 10,000 requests holds sequence numbers head..head+9,999, and an org that
-- then submits 50 gets head..head+49: the two alternate, one each, until the second org
-- runs out. The claim stays one statement on one partial index with SKIP LOCKED; the
-- cost moves to the insert (two index probes in a BEFORE trigger, so every insert path
-- — API, replay, schedules, bulk SQL — is covered).
--
-- A requeued or woken request keeps its number (it is first in line again). Two
-- concurrent inserts of one org may get the same number; the tie is broken by time.

ALTER TABLE eve.orchestration_requests ADD COLUMN fair_seq bigint NOT NULL DEFAULT 0;

-- The claim's index: the lane, then round-robin order. Replaces 0001's poll index
-- (same leading columns, so every query that used it is served).
CREATE INDEX idx_requests_fair
    ON eve.orchestration_requests (worker_type, priority DESC, fair_seq, run_after, created_at)
    WHERE status = 'pending';
DROP INDEX eve.idx_requests_poll;
-- An org's last pending number in a lane, and an org's pending count (max pending).
CREATE INDEX idx_requests_org_pending
    ON eve.orchestration_requests (org_id, worker_type, priority, fair_seq)
    WHERE status = 'pending';
-- The month's spend of an org (budgets), read from the index alone.
CREATE INDEX idx_results_org_created
    ON eve.orchestration_results (org_id, created_at) INCLUDE (cost_usd);

-- Definer: the lane's head is read across every org, whoever inserts (the API's role
-- sees one org under RLS).
CREATE FUNCTION eve.assign_fair_seq() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, eve AS $$
DECLARE
    v_org bigint;
    v_head bigint;
BEGIN
    IF NEW.status <> 'pending' THEN
        RETURN NEW;
    END IF;
    SELECT r.fair_seq INTO v_org
    FROM eve.orchestration_requests r
    WHERE r.org_id = NEW.org_id AND r.worker_type = NEW.worker_type AND r.priority = NEW.priority
      AND r.status = 'pending'
    ORDER BY r.fair_seq DESC
    LIMIT 1;
    SELECT r.fair_seq INTO v_head
    FROM eve.orchestration_requests r
    WHERE r.worker_type = NEW.worker_type AND r.priority = NEW.priority AND r.status = 'pending'
      AND r.run_after <= now() AND r.blocked_by = '{}'
    ORDER BY r.priority DESC, r.fair_seq, r.run_after, r.created_at
    LIMIT 1;
    NEW.fair_seq := greatest(coalesce(v_org + 1, 0), coalesce(v_head, 0));
    RETURN NEW;
END
$$;

CREATE TRIGGER orchestration_requests_fair_seq
    BEFORE INSERT ON eve.orchestration_requests
    FOR EACH ROW EXECUTE FUNCTION eve.assign_fair_seq();

REVOKE ALL ON FUNCTION eve.assign_fair_seq() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eve.assign_fair_seq() TO eve_api, service_role;

-- ---------------------------------------------------------------------------
-- Limits and budgets per org (operators edit them)
-- ---------------------------------------------------------------------------
--
-- No row, or a NULL column: no limit (today's behaviour). `max_running` caps the
-- requests in flight per worker type; `max_running_by_type` overrides it for named
-- types ({"general": 5}). `platform_keys`: whether the platform's provider keys and
-- GH_TOKEN (the worker's environment) reach this org's agents; true keeps the
-- behaviour of existing single-org setups.
CREATE TABLE eve.org_limits (
    org_id               uuid PRIMARY KEY REFERENCES eve.organizations(id) ON DELETE CASCADE,
    max_running          integer CHECK (max_running >= 0),
    max_running_by_type  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(max_running_by_type) = 'object'),
    max_pending          integer CHECK (max_pending >= 0),
    rate_per_minute      integer CHECK (rate_per_minute >= 0),
    monthly_budget_usd   numeric(12, 2) CHECK (monthly_budget_usd >= 0),
    platform_keys        boolean NOT NULL DEFAULT true,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    updated_by           uuid REFERENCES eve.users(id) ON DELETE SET NULL
);

-- Requests per minute per API key: one row per key, a fixed one-minute window.
CREATE TABLE eve.api_key_rate (
    key_id        uuid PRIMARY KEY REFERENCES eve.api_keys(id) ON DELETE CASCADE,
    org_id        uuid NOT NULL,
    window_start  timestamptz NOT NULL,
    n             integer NOT NULL
);

-- ---------------------------------------------------------------------------
-- Audit log: who changed what, when; the org's admins read it
-- ---------------------------------------------------------------------------
CREATE TABLE eve.audit_log (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    org_id         uuid NOT NULL REFERENCES eve.organizations(id) ON DELETE CASCADE,
    actor_user_id  uuid,
    actor_email    text,
    action         text NOT NULL,
    target         text NOT NULL DEFAULT '',
    data           jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX idx_audit_org ON eve.audit_log (org_id, id DESC);

-- ---------------------------------------------------------------------------
-- Per-org secrets: Fernet ciphertext only; the API may write, never read it back
-- ---------------------------------------------------------------------------
CREATE TABLE eve.org_secrets (
    org_id      uuid NOT NULL REFERENCES eve.organizations(id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[A-Z][A-Z0-9_]{0,63}$'),
    ciphertext  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  uuid REFERENCES eve.users(id) ON DELETE SET NULL,
    PRIMARY KEY (org_id, name)
);

-- ---------------------------------------------------------------------------
-- Who administers an org: its owners and admins, and operators
-- ---------------------------------------------------------------------------
CREATE FUNCTION eve.is_org_admin(p_org uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, eve
    AS $$ SELECT eve.is_operator() OR EXISTS (
              SELECT 1 FROM eve.org_members
              WHERE org_id = p_org AND user_id = eve.current_user_id() AND role IN ('owner', 'admin')) $$;
REVOKE ALL ON FUNCTION eve.is_org_admin(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eve.is_org_admin(uuid) TO eve_api, service_role;

-- An admin adds a member by email: the user row is found or created here (eve_api may
-- not write eve.users). Only someone who administers some org (or an operator) may call it.
CREATE FUNCTION eve.api_user_ensure(p_email text, p_display_name text) RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, eve AS $$
DECLARE
    v_id uuid;
BEGIN
    IF NOT (eve.is_operator() OR EXISTS (SELECT 1 FROM eve.org_members WHERE user_id = eve.current_user_id()
                                                                     AND role IN ('owner', 'admin'))) THEN
        RAISE EXCEPTION 'only org admins may add users' USING ERRCODE = '42501';
    END IF;
    INSERT INTO eve.users (email, display_name) VALUES (lower(p_email), p_display_name)
    ON CONFLICT (email) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id INTO v_id FROM eve.users WHERE email = lower(p_email);
    END IF;
    RETURN v_id;
END
$$;
REVOKE ALL ON FUNCTION eve.api_user_ensure(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eve.api_user_ensure(text, text) TO eve_api;

-- ---------------------------------------------------------------------------
-- Row-level security on the new tables; writes to keys and members for admins
-- ---------------------------------------------------------------------------
ALTER TABLE eve.org_limits ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.org_limits FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON eve.org_limits FOR SELECT TO eve_api
    USING ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()));
CREATE POLICY operators_write ON eve.org_limits FOR ALL TO eve_api
    USING ((SELECT eve.is_operator())) WITH CHECK ((SELECT eve.is_operator()));
CREATE POLICY service_bypass ON eve.org_limits FOR ALL TO service_role USING (true);

ALTER TABLE eve.api_key_rate ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.api_key_rate FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON eve.api_key_rate FOR ALL TO eve_api
    USING ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()))
    WITH CHECK ((SELECT eve.is_operator()) OR org_id IN (SELECT eve.user_org_ids()));
CREATE POLICY service_bypass ON eve.api_key_rate FOR ALL TO service_role USING (true);

ALTER TABLE eve.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY admins_read ON eve.audit_log FOR SELECT TO eve_api
    USING (eve.is_org_admin(org_id));
-- a row is written by the change it records, in its transaction, naming its actor
CREATE POLICY admins_write ON eve.audit_log FOR INSERT TO eve_api
    WITH CHECK (eve.is_org_admin(org_id) AND actor_user_id = eve.current_user_id());
CREATE POLICY service_bypass ON eve.audit_log FOR ALL TO service_role USING (true);

ALTER TABLE eve.org_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.org_secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY admins_only ON eve.org_secrets FOR ALL TO eve_api
    USING (eve.is_org_admin(org_id)) WITH CHECK (eve.is_org_admin(org_id));
CREATE POLICY service_bypass ON eve.org_secrets FOR ALL TO service_role USING (true);

CREATE POLICY admins_write ON eve.api_keys FOR ALL TO eve_api
    USING (eve.is_org_admin(org_id))
    WITH CHECK (eve.is_org_admin(org_id)
                AND EXISTS (SELECT 1 FROM eve.org_members m
                            WHERE m.org_id = api_keys.org_id AND m.user_id = api_keys.user_id));
CREATE POLICY admins_write ON eve.org_members FOR ALL TO eve_api
    USING (eve.is_org_admin(org_id)) WITH CHECK (eve.is_org_admin(org_id));

GRANT SELECT, INSERT, UPDATE ON eve.org_limits TO eve_api;
GRANT SELECT, INSERT, UPDATE ON eve.api_key_rate TO eve_api;
GRANT SELECT, INSERT ON eve.audit_log TO eve_api;
GRANT USAGE ON SEQUENCE eve.audit_log_id_seq TO eve_api;
-- secrets: write-only for the API (no column privilege on ciphertext for SELECT)
GRANT SELECT (org_id, name, created_at, updated_at, updated_by) ON eve.org_secrets TO eve_api;
GRANT INSERT (org_id, name, ciphertext, updated_by) ON eve.org_secrets TO eve_api;
GRANT UPDATE (ciphertext, updated_at, updated_by) ON eve.org_secrets TO eve_api;
GRANT DELETE ON eve.org_secrets TO eve_api;
GRANT INSERT (org_id, user_id, name, prefix, secret_hash) ON eve.api_keys TO eve_api;
GRANT UPDATE (revoked_at) ON eve.api_keys TO eve_api;
GRANT INSERT, UPDATE (role), DELETE ON eve.org_members TO eve_api;

GRANT SELECT, INSERT, UPDATE, DELETE ON eve.org_limits, eve.api_key_rate, eve.audit_log, eve.org_secrets
    TO service_role;
GRANT USAGE, SELECT ON SEQUENCE eve.audit_log_id_seq TO service_role;

-- ---------------------------------------------------------------------------
-- The seed's claim function: the same fair order and per-org caps as claim_batch
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION eve.claim_next_request(p_worker_type text, p_worker_id text,
                                                  p_lease interval DEFAULT interval '60 seconds')
    RETURNS eve.orchestration_requests
    LANGUAGE plpgsql AS $$
DECLARE
    v_request eve.orchestration_requests;
BEGIN
    SELECT * INTO v_request
    FROM eve.orchestration_requests r
    WHERE r.worker_type = p_worker_type
      AND r.status = 'pending'
      AND r.run_after <= now()
      AND r.blocked_by = '{}'
      AND r.org_id NOT IN (SELECT c.org_id FROM eve.org_caps_full(p_worker_type) c)
    ORDER BY r.priority DESC, r.fair_seq, r.run_after, r.created_at
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

-- Orgs with a running cap for a worker type and the room left under it (cap minus what
-- is in flight). Read by the claims (workers: service_role).
--
-- Exact under concurrent claims: while any org has a cap for this type, claims of the
-- type take one transaction-level advisory lock first, and count what is in flight in a
-- snapshot taken after it (VOLATILE: each query inside sees what committed before), so
-- a claimer sees the rows the previous claimer took. The price: claims of a type with
-- caps run one at a time (a few ms each); types without caps never take the lock.
-- In flight = holds a lease: counted through the reaper's small partial index (0003),
-- never through an org's history. ROWS 10: few orgs have caps (the default 1000 skews
-- the claim's plan).
CREATE FUNCTION eve.org_caps(p_worker_type text) RETURNS TABLE (org_id uuid, room bigint)
    LANGUAGE plpgsql VOLATILE ROWS 10 SET search_path = pg_catalog, eve AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM eve.org_limits l
                   WHERE coalesce((l.max_running_by_type ->> p_worker_type)::integer, l.max_running) IS NOT NULL) THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('eve.org_caps:' || p_worker_type, 1911));
    RETURN QUERY
    WITH capped AS (
        SELECT l.org_id, coalesce((l.max_running_by_type ->> p_worker_type)::integer, l.max_running) AS cap
        FROM eve.org_limits l
        WHERE coalesce((l.max_running_by_type ->> p_worker_type)::integer, l.max_running) IS NOT NULL
    ), running AS (
        SELECT r.org_id, count(*) AS n
        FROM eve.orchestration_requests r
        WHERE r.lease_expires_at IS NOT NULL AND r.status IN ('claimed', 'processing')
          AND r.worker_type = p_worker_type
        GROUP BY r.org_id
    )
    SELECT c.org_id, c.cap - coalesce(f.n, 0) FROM capped c LEFT JOIN running f ON f.org_id = c.org_id;
END
$$;

CREATE FUNCTION eve.org_caps_full(p_worker_type text) RETURNS TABLE (org_id uuid)
    LANGUAGE sql VOLATILE ROWS 10 SET search_path = pg_catalog, eve AS $$
    SELECT c.org_id FROM eve.org_caps(p_worker_type) c WHERE c.room <= 0
$$;
GRANT EXECUTE ON FUNCTION eve.org_caps(text), eve.org_caps_full(text) TO service_role;
