-- Cron schedules: recurring requests (the seed's `eve.schedules` extension).
--
-- A tick fires exactly once however many processes run the scheduler: every scheduler
-- tries, and the primary key of schedule_fires (schedule_id, fire_at) decides who wins
-- (INSERT ... ON CONFLICT DO NOTHING, procrastinate-style; no leader election). The fire
-- row and the request it creates are written by one statement (queries_schedules.sql).

CREATE TABLE eve.schedules (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id             uuid NOT NULL REFERENCES eve.organizations(id) ON DELETE CASCADE,
    -- whose requests the schedule creates
    user_id            uuid NOT NULL REFERENCES eve.users(id) ON DELETE CASCADE,
    name               text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    -- the seed's columns
    cron_expression    text NOT NULL CHECK (length(cron_expression) BETWEEN 1 AND 200),
    -- prompt, context, config, priority of the requests it creates (worker type below)
    request_template   jsonb NOT NULL CHECK (jsonb_typeof(request_template) = 'object'
                                             AND length(request_template->>'prompt') > 0),
    enabled            boolean NOT NULL DEFAULT true,
    -- what operations need
    worker_type        text NOT NULL REFERENCES eve.worker_types(id),
    timezone           text NOT NULL DEFAULT 'UTC',
    overlap            text NOT NULL DEFAULT 'skip' CHECK (overlap IN ('skip', 'allow')),
    max_delay_seconds  integer NOT NULL DEFAULT 600 CHECK (max_delay_seconds BETWEEN 0 AND 86400),
    -- the next tick to fire; NULL while paused (resume computes it from "now": no burst)
    next_fire_at       timestamptz,
    last_fired_at      timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);
-- The scheduler's only scan: what is due, and when the next tick is.
CREATE INDEX idx_schedules_due ON eve.schedules (next_fire_at) WHERE enabled;

CREATE TABLE eve.schedule_fires (
    schedule_id  uuid NOT NULL REFERENCES eve.schedules(id) ON DELETE CASCADE,
    fire_at      timestamptz NOT NULL,
    org_id       uuid NOT NULL,
    -- fired: a request was created; skipped: overlap=skip and the previous run was still
    -- going; missed: the tick was older than max_delay when a scheduler saw it; manual: run now
    outcome      text NOT NULL CHECK (outcome IN ('fired', 'skipped', 'missed', 'manual')),
    request_id   uuid REFERENCES eve.orchestration_requests(id) ON DELETE SET NULL,
    fired_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_id, fire_at)
);
CREATE INDEX idx_schedule_fires_latest ON eve.schedule_fires (schedule_id, fired_at DESC);
-- `eve db prune` deletes requests; the FK above then looks fires up by request.
CREATE INDEX idx_schedule_fires_request ON eve.schedule_fires (request_id) WHERE request_id IS NOT NULL;

ALTER TABLE eve.orchestration_requests
    ADD COLUMN schedule_id uuid REFERENCES eve.schedules(id) ON DELETE SET NULL;
-- Overlap check ("is the previous run still going?") and a schedule's history.
CREATE INDEX idx_requests_schedule ON eve.orchestration_requests (schedule_id, created_at DESC)
    WHERE schedule_id IS NOT NULL;

-- ---------------------------------------------------------------------------
-- Row-level security, as on every tenant table.
-- ---------------------------------------------------------------------------

ALTER TABLE eve.schedules ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.schedules FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON eve.schedules FOR ALL TO eve_api
    USING (eve.can_see_org(org_id))
    WITH CHECK (eve.can_see_org(org_id));
CREATE POLICY service_bypass ON eve.schedules FOR ALL TO service_role USING (true);

ALTER TABLE eve.schedule_fires ENABLE ROW LEVEL SECURITY;
ALTER TABLE eve.schedule_fires FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON eve.schedule_fires FOR ALL TO eve_api
    USING (eve.can_see_org(org_id))
    WITH CHECK (eve.can_see_org(org_id));
CREATE POLICY service_bypass ON eve.schedule_fires FOR ALL TO service_role USING (true);

GRANT SELECT, INSERT, UPDATE, DELETE ON eve.schedules TO eve_api;
GRANT SELECT, INSERT ON eve.schedule_fires TO eve_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON eve.schedules, eve.schedule_fires TO service_role;

-- ---------------------------------------------------------------------------
-- Wake-up: schedulers sleep until the next tick; a changed schedule wakes them.
-- Only changes made by people notify (not the scheduler's own next_fire_at moves),
-- so a busy schedule does not make every process wake on every tick.
-- ---------------------------------------------------------------------------

CREATE FUNCTION eve.notify_schedule() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eve_schedules', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER schedules_notify
    AFTER INSERT OR DELETE OR UPDATE OF cron_expression, timezone, enabled ON eve.schedules
    FOR EACH STATEMENT EXECUTE FUNCTION eve.notify_schedule();
GRANT EXECUTE ON FUNCTION eve.notify_schedule() TO service_role;
