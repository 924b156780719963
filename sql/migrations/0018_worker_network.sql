-- The agents' network, per worker: filtered (its own network namespace, out only through the
-- worker's allowlisting proxy) or open (the host's). Workers registered before this knew no
-- filter: their rows read 'open', which is what their agents had. `eve workers`, GET /workers
-- and `eve doctor` show it beside the sandbox mode.
ALTER TABLE eve.workers
    ADD COLUMN network text NOT NULL DEFAULT 'open' CHECK (network IN ('filtered', 'open'));

-- The API reads workers only through eve.workers_visible (0004, 0006): the new column goes
-- last, as CREATE OR REPLACE VIEW requires.
CREATE OR REPLACE VIEW eve.workers_visible WITH (security_barrier = true) AS
SELECT w.id, w.worker_type, w.hostname, w.pid, w.version, w.slots, w.state,
       CASE WHEN r.org_id IS NOT NULL AND eve.can_see_org(r.org_id) THEN w.current_request_id END
           AS current_request_id,
       w.started_at, w.heartbeat_at, w.stopped_at, w.sandbox, w.disk_low,
       (SELECT count(*) FROM eve.orchestration_requests b
        WHERE b.claimed_by = w.id AND b.status IN ('claimed', 'processing')
          AND b.lease_expires_at IS NOT NULL) AS slots_busy,  -- in flight: the lease index (0003)
       w.drain_requested_at,
       w.network
FROM eve.workers w
LEFT JOIN eve.orchestration_requests r ON r.id = w.current_request_id;
