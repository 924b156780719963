-- Idempotency keys (#33): a program that retries POST /requests after a lost response sends
-- the same Idempotency-Key and gets the original answer back, not a second agent.
--
-- One row per (org, key). The primary key is what makes two concurrent POSTs with one key
-- create one request: each claims the key first (INSERT ... ON CONFLICT DO NOTHING), and
-- the second waits there for the first transaction, then finds its row (no
-- read-then-write). The claim, the request and the response it got (UPDATE) share one
-- transaction, so a request that was refused (400, 429, ...) leaves no key behind and its
-- retry is tried afresh. A key is kept
-- `EVE_IDEMPOTENCY_TTL_HOURS` (24); past that the API treats it as unused.
CREATE TABLE eve.idempotency_keys (
    org_id     uuid NOT NULL REFERENCES eve.organizations(id) ON DELETE CASCADE,
    key        text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    route      text NOT NULL,           -- 'POST /requests': a key names one operation
    body_hash  bytea NOT NULL,          -- sha256 of the decoded body: same key, other body = 422
    status     int,                     -- NULL only inside the claiming transaction
    response   jsonb,
    user_id    uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key)
);
CREATE INDEX idempotency_keys_created_at ON eve.idempotency_keys (created_at);

ALTER TABLE eve.idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON eve.idempotency_keys FOR ALL TO eve_api
    USING (eve.can_see_org(org_id)) WITH CHECK (eve.can_see_org(org_id));
CREATE POLICY service_bypass ON eve.idempotency_keys FOR ALL TO service_role USING (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON eve.idempotency_keys TO eve_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON eve.idempotency_keys TO service_role;
