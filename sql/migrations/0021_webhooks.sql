-- Webhooks (#33): an org's endpoints hear when its requests finish, without polling.
--
-- An endpoint (URL, the events it wants, a signing secret kept encrypted under
-- EVE_SECRETS_KEY) belongs to an org; only its owners and admins manage it. Deliveries are
-- a durable outbox: written by a trigger in the same transaction as the result they
-- announce (so a result is never announced twice or lost), claimed by workers with
-- FOR UPDATE SKIP LOCKED, retried with backoff for a day, at least once, each with one
-- stable id the receiver can dedupe on (Standard Webhooks' `webhook-id`).
CREATE TABLE eve.webhook_endpoints (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES eve.organizations(id) ON DELETE CASCADE,
    url             text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2000),
    events          text[] NOT NULL CHECK (cardinality(events) > 0),
    description     text NOT NULL DEFAULT '',
    secret          bytea NOT NULL,              -- Fernet ciphertext of "whsec_..." (eve.orgsecrets.Keyring)
    created_by      uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    disabled_at     timestamptz,
    disabled_reason text,
    failures_in_row int NOT NULL DEFAULT 0       -- deliveries given up on since the last success
);
CREATE INDEX webhook_endpoints_org ON eve.webhook_endpoints (org_id) WHERE disabled_at IS NULL;

CREATE TABLE eve.webhook_deliveries (
    id              bigserial PRIMARY KEY,
    endpoint_id     uuid NOT NULL REFERENCES eve.webhook_endpoints(id) ON DELETE CASCADE,
    org_id          uuid NOT NULL REFERENCES eve.organizations(id) ON DELETE CASCADE,
    message_id      text NOT NULL UNIQUE,        -- webhook-id: the same on every retry
    event           text NOT NULL,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts        int NOT NULL DEFAULT 0,
    delivered_at    timestamptz,
    given_up_at     timestamptz,
    last_status     int,                         -- the receiver's HTTP status, NULL: no answer
    last_error      text
);
CREATE INDEX webhook_deliveries_due ON eve.webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
CREATE INDEX webhook_deliveries_endpoint ON eve.webhook_deliveries (endpoint_id, id DESC);

ALTER TABLE eve.webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.webhook_endpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY admins_only ON eve.webhook_endpoints FOR ALL TO eve_api
    USING (eve.is_org_admin(org_id)) WITH CHECK (eve.is_org_admin(org_id));
CREATE POLICY service_bypass ON eve.webhook_endpoints FOR ALL TO service_role USING (true);
ALTER TABLE eve.webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY admins_only ON eve.webhook_deliveries FOR ALL TO eve_api
    USING (eve.is_org_admin(org_id)) WITH CHECK (eve.is_org_admin(org_id));
CREATE POLICY service_bypass ON eve.webhook_deliveries FOR ALL TO service_role USING (true);

-- The API writes the secret but never reads it back (it is shown once, when made).
GRANT SELECT (id, org_id, url, events, description, created_by, created_at, disabled_at, disabled_reason,
              failures_in_row) ON eve.webhook_endpoints TO eve_api;
GRANT INSERT (org_id, url, events, description, secret, created_by) ON eve.webhook_endpoints TO eve_api;
GRANT UPDATE (disabled_at, disabled_reason, failures_in_row) ON eve.webhook_endpoints TO eve_api;
GRANT DELETE ON eve.webhook_endpoints TO eve_api;
GRANT SELECT ON eve.webhook_deliveries TO eve_api;
GRANT INSERT (endpoint_id, org_id, message_id, event, payload) ON eve.webhook_deliveries TO eve_api;
GRANT USAGE ON SEQUENCE eve.webhook_deliveries_id_seq TO eve_api, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON eve.webhook_endpoints, eve.webhook_deliveries TO service_role;

-- A result is announced to the endpoints of its org that want its event, in the result's
-- own transaction. One probe of a partial index first: with no endpoint anywhere (the common
-- case, and the queue benchmark's) the statement costs that probe only.
CREATE FUNCTION eve.webhooks_on_results() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, eve AS $$
DECLARE
    made_n int;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM eve.webhook_endpoints WHERE disabled_at IS NULL) THEN
        RETURN NULL;
    END IF;
    WITH ev AS (
        SELECT i.*, CASE i.status WHEN 'success' THEN 'request.completed'
                                  WHEN 'cancelled' THEN 'request.cancelled'
                                  ELSE 'request.failed' END AS event
        FROM inserted i
    ), made AS (
        INSERT INTO eve.webhook_deliveries (endpoint_id, org_id, message_id, event, payload)
        SELECT e.id, ev.org_id, 'msg_' || replace(gen_random_uuid()::text, '-', ''), ev.event,
               jsonb_build_object(
                   'type', ev.event,
                   'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                   'data', jsonb_build_object(
                       'requestId', ev.request_id, 'orgId', ev.org_id, 'status', ev.status,
                       'summary', ev.summary, 'error', ev.error, 'errorCode', ev.error_code,
                       'durationMs', ev.duration_ms, 'tokensUsed', ev.tokens_used, 'costUsd', ev.cost_usd))
        FROM ev JOIN eve.webhook_endpoints e
          ON e.org_id = ev.org_id AND e.disabled_at IS NULL AND ev.event = ANY (e.events)
        RETURNING 1
    )
    SELECT count(*) INTO made_n FROM made;
    IF made_n > 0 THEN
        PERFORM pg_notify('eve_webhooks', '');  -- a worker's delivery loop wakes at once
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER orchestration_results_webhooks
    AFTER INSERT ON eve.orchestration_results
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION eve.webhooks_on_results();
REVOKE ALL ON FUNCTION eve.webhooks_on_results() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eve.webhooks_on_results() TO eve_api, service_role;
