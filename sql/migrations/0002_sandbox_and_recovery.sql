-- 0002: what the worker registry must show about containment and health.
-- (A restarting worker finds its old claims through idx_requests_lease: in-flight rows only.)

-- sandbox: how this worker contains its agents (bwrap | uid | none); `none` is shown
-- loudly in `eve workers`, `eve status`, `eve doctor` and the console.
-- disk_low: the free-disk floor under the workspace root is reached; the worker stops
-- claiming until space comes back.
ALTER TABLE eve.workers
    ADD COLUMN sandbox  text    NOT NULL DEFAULT 'none' CHECK (sandbox IN ('bwrap', 'uid', 'none')),
    ADD COLUMN disk_low boolean NOT NULL DEFAULT false;
