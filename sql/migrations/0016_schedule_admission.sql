-- A schedule's tick is admitted like any other new request (eve.limits): an org at its
-- pending cap or over its monthly budget gets no request from cron, the tick is recorded
-- as `refused`, and `detail` says why. Until now a schedule (and "run now", and a Slack
-- mention) created requests past both limits.

ALTER TABLE eve.schedule_fires DROP CONSTRAINT schedule_fires_outcome_check;
ALTER TABLE eve.schedule_fires ADD CONSTRAINT schedule_fires_outcome_check
    CHECK (outcome IN ('fired', 'skipped', 'missed', 'manual', 'refused'));
ALTER TABLE eve.schedule_fires ADD COLUMN detail text;
