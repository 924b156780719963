-- 0002: what the worker registry must show about containment and health, and the
-- lookup a restarting worker uses to take back what its previous incarnation held.

-- sandbox: how this worker contains its agents (bwrap | uid | none); `none` is shown
-- loudly in `eve workers`, `eve status`, `eve doctor` and the console.
-- disk_low: the free-disk floor under the workspace root is reached; the worker stops
-- claiming until space comes back.
ALTER TABLE eve.workers
    ADD COLUMN sandbox  text    NOT NULL DEFAULT 'none' CHECK (sandbox IN ('bwrap', 'uid', 'none')),
    ADD COLUMN disk_low boolean NOT NULL DEFAULT false;

-- A worker id is a stable name (general-1, the systemd instance, the pod name); at start
-- a worker asks "what do I still hold?" — one indexed probe, however long the history.
CREATE INDEX idx_requests_claimed_by ON eve.orchestration_requests (claimed_by)
    WHERE status IN ('claimed', 'processing');
