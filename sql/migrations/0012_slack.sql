-- Slack (#20): installations, identity links, and the durable outbox of thread messages.
--
-- Secrets (bot token, signing secret, app token) are stored encrypted (AES-256-GCM, key
-- derived from JWT_SECRET: eve/slack/secretbox.py) in their own table that eve_api has
-- no grant on. The API verifies inbound signatures and looks users up, so it reads the
-- ciphertext through one definer function (eve.slack_api_installations) and decrypts in
-- memory; no endpoint ever returns it. The Slack daemon (service_role) reads them to post.
--
-- Delivery: eve.slack_threads has one row per Slack-started request, inserted in the same
-- transaction as the request (so a request from Slack always has its outbox row). The
-- daemon posts the thread root, keeps one progress message up to date and posts the
-- result, driven by request_events with a cursor per thread (event_cursor). A cursor per
-- request rather than per installation: bigserial ids are assigned at insert and become
-- visible at commit, out of order across transactions, so a cursor over many requests can
-- step past an event committed late; one request's events are written by the one worker
-- holding its lease, in order. Each Slack call is followed by its own commit of the ts it
-- produced, so a crash can at worst repeat the one call in flight.

CREATE TABLE eve.slack_installations (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid NOT NULL REFERENCES eve.organizations(id) ON DELETE CASCADE,
    team_id       text NOT NULL UNIQUE CHECK (team_id ~ '^[A-Z0-9]{2,32}$'),
    -- worker type of `/eve PROMPT` without a `type:` prefix
    default_type  text NOT NULL DEFAULT 'general' REFERENCES eve.worker_types(id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX slack_installations_org_idx ON eve.slack_installations (org_id);

CREATE TABLE eve.slack_secrets (
    installation_id  uuid PRIMARY KEY REFERENCES eve.slack_installations(id) ON DELETE CASCADE,
    org_id           uuid NOT NULL,
    bot_token        bytea NOT NULL,
    signing_secret   bytea NOT NULL,
    app_token        bytea
);

-- Slack user -> eve user, set by `eve admin slack link` (verified-email matches are not
-- stored: they are looked up again each time, so an email change in Slack is followed).
CREATE TABLE eve.slack_user_links (
    installation_id  uuid NOT NULL REFERENCES eve.slack_installations(id) ON DELETE CASCADE,
    slack_user_id    text NOT NULL CHECK (slack_user_id ~ '^[A-Z0-9]{2,32}$'),
    org_id           uuid NOT NULL,
    user_id          uuid NOT NULL REFERENCES eve.users(id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (installation_id, slack_user_id)
);

CREATE TABLE eve.slack_threads (
    request_id       uuid PRIMARY KEY REFERENCES eve.orchestration_requests(id) ON DELETE CASCADE,
    installation_id  uuid NOT NULL REFERENCES eve.slack_installations(id) ON DELETE CASCADE,
    org_id           uuid NOT NULL,
    channel          text NOT NULL,
    -- who asked (named in the thread root)
    slack_user       text,
    -- Slack's id for the inbound delivery that created it (event_id, or the slash
    -- command's trigger_id): a retried delivery conflicts here and creates nothing
    inbound_key      text UNIQUE,
    root_ts          text,
    progress_ts      text,
    result_ts        text,
    progress_at      timestamptz,
    event_cursor     bigint NOT NULL DEFAULT 0,
    -- questions (hitl) already posted in the thread
    posted_questions uuid[] NOT NULL DEFAULT '{}',
    -- backoff after a failed Slack call (429: its Retry-After)
    next_try_at      timestamptz NOT NULL DEFAULT now(),
    failures         integer NOT NULL DEFAULT 0,
    last_error       text,
    -- one delivery loop at a time per thread, across commits
    locked_until     timestamptz,
    done_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX slack_threads_open_idx ON eve.slack_threads (next_try_at) WHERE done_at IS NULL;

-- A new thread wakes the delivery loop (`eve slack run` LISTENs), so the thread root is
-- posted at once rather than at its next poll. Only this table, only on insert: a Slack
-- request's progress and result are picked up by the poll (every second), and nothing
-- else the platform writes pays for a NOTIFY.
CREATE FUNCTION eve.notify_slack_thread() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eve_slack', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER slack_threads_notify
    AFTER INSERT ON eve.slack_threads
    FOR EACH STATEMENT EXECUTE FUNCTION eve.notify_slack_thread();

-- ---------------------------------------------------------------------------
-- Row-level security
-- ---------------------------------------------------------------------------

ALTER TABLE eve.slack_installations ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.slack_installations FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON eve.slack_installations FOR SELECT TO eve_api
    USING (eve.can_see_org(org_id));
CREATE POLICY service_bypass ON eve.slack_installations FOR ALL TO service_role USING (true);

ALTER TABLE eve.slack_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.slack_secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY service_bypass ON eve.slack_secrets FOR ALL TO service_role USING (true);

ALTER TABLE eve.slack_user_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.slack_user_links FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON eve.slack_user_links FOR SELECT TO eve_api
    USING (eve.can_see_org(org_id));
CREATE POLICY service_bypass ON eve.slack_user_links FOR ALL TO service_role USING (true);

-- The API inserts the outbox row with the request, under the caller's identity.
ALTER TABLE eve.slack_threads ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.slack_threads FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON eve.slack_threads FOR ALL TO eve_api
    USING (eve.can_see_org(org_id))
    WITH CHECK (eve.can_see_org(org_id) AND EXISTS (
        SELECT 1 FROM eve.orchestration_requests r
        WHERE r.id = slack_threads.request_id AND r.org_id = slack_threads.org_id)
        AND EXISTS (SELECT 1 FROM eve.slack_installations i
                    WHERE i.id = slack_threads.installation_id AND i.org_id = slack_threads.org_id));
CREATE POLICY service_bypass ON eve.slack_threads FOR ALL TO service_role USING (true);

GRANT SELECT (id, org_id, team_id, default_type, created_at, updated_at) ON eve.slack_installations TO eve_api;
GRANT SELECT ON eve.slack_user_links TO eve_api;
GRANT SELECT, INSERT ON eve.slack_threads TO eve_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON eve.slack_installations, eve.slack_secrets, eve.slack_user_links,
    eve.slack_threads TO service_role;

-- ---------------------------------------------------------------------------
-- What the API reads before anyone is authenticated
-- ---------------------------------------------------------------------------

-- Every installation with its encrypted secrets: the inbound verifier tries the signing
-- secrets (Slack signs per app, and the body may not be parsed before it is verified).
CREATE FUNCTION eve.slack_api_installations()
    RETURNS TABLE (id uuid, org_id uuid, team_id text, default_type text,
                   bot_token bytea, signing_secret bytea)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, eve
    AS $$
        SELECT i.id, i.org_id, i.team_id, i.default_type, s.bot_token, s.signing_secret
        FROM eve.slack_installations i JOIN eve.slack_secrets s ON s.installation_id = i.id
    $$;

-- The eve user a Slack user acts as in an installation: an explicit link first, else the
-- member of the installation's org whose email is the one Slack verified. NULL: nobody.
CREATE FUNCTION eve.slack_resolve_user(p_installation uuid, p_slack_user text, p_verified_email text)
    RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, eve
    AS $$
        SELECT coalesce(
            (SELECT l.user_id FROM eve.slack_user_links l
             JOIN eve.slack_installations i ON i.id = l.installation_id
             JOIN eve.org_members m ON m.org_id = i.org_id AND m.user_id = l.user_id
             WHERE l.installation_id = p_installation AND l.slack_user_id = p_slack_user),
            (SELECT u.id FROM eve.users u
             JOIN eve.org_members m ON m.user_id = u.id
             JOIN eve.slack_installations i ON i.org_id = m.org_id
             WHERE i.id = p_installation AND p_verified_email IS NOT NULL
               AND lower(u.email) = lower(p_verified_email)))
    $$;

REVOKE ALL ON FUNCTION eve.slack_api_installations(), eve.slack_resolve_user(uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eve.slack_api_installations(), eve.slack_resolve_user(uuid, text, text)
    TO eve_api, service_role;
