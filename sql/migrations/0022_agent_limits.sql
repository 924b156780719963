-- Per-agent limits (#28). The agents' limits, per worker: each limit's value and what holds it here
-- ({"mechanism": "cgroup1", "memory_mb": 4096, ..., "holds": {"memory": "cgroup1 (whole
-- tree, /tmp included)", "tmp": "not enforced: ..."}}). Workers registered before this
-- held none: their rows read NULL, which `eve workers` and `eve doctor` show as "none".
ALTER TABLE eve.workers ADD COLUMN limits jsonb;

-- The API reads workers only through eve.workers_visible (0004, 0006, 0018): the new column
-- goes last, as CREATE OR REPLACE VIEW requires.
CREATE OR REPLACE VIEW eve.workers_visible WITH (security_barrier = true) AS
SELECT w.id, w.worker_type, w.hostname, w.pid, w.version, w.slots, w.state,
       CASE WHEN r.org_id IS NOT NULL AND eve.can_see_org(r.org_id) THEN w.current_request_id END
           AS current_request_id,
       w.started_at, w.heartbeat_at, w.stopped_at, w.sandbox, w.disk_low,
       (SELECT count(*) FROM eve.orchestration_requests b
        WHERE b.claimed_by = w.id AND b.status IN ('claimed', 'processing')
          AND b.lease_expires_at IS NOT NULL) AS slots_busy,  -- in flight: the lease index (0003)
       w.drain_requested_at,
       w.network,
       w.limits
FROM eve.workers w
LEFT JOIN eve.orchestration_requests r ON r.id = w.current_request_id;

-- An org's own agent limits, set by operators (`eve org limits SLUG --agent-memory-mb N`):
-- they narrow, never widen, what the worker and the worker type allow ({"memory_mb": 1024}).
ALTER TABLE eve.org_limits
    ADD COLUMN agent_limits jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(agent_limits) = 'object');
