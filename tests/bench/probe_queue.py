"""Design probe (#13): would a different schema close the queue's gap to pgqueuer?

Not part of `make bench`: run it with `python -m tests.bench.probe_queue`. It drains
no-op jobs through the worker's path (claims of 10, ResultWriter group finish) in three
databases of one durable PostgreSQL, interleaved round by round, with pgqueuer in the
same rounds, and prints the medians:

* `eve` — the schema as migrated;
* `trimmed` — an upper bound for shaving the current design: the claim's `claimed` event
  dropped, and the listing indexes (`idx_requests_created`, `idx_requests_org_created`,
  `idx_requests_finished`, `idx_results_org_created`) and every foreign key of results
  and events removed. None of this is acceptable as is; it bounds what such cuts buy;
* `narrow` — the redesign the performance issue proposed: the pending and in-flight
  indexes moved off the wide request row into a narrow table kept by triggers (so the
  claim's update of the wide row can be HOT, fillfactor 80), the claim reading the narrow
  table.

On the 2-core development box (2 December 2026, two runs) trimmed drained 1.17-1.25x
eve's jobs/s (0.80x pgqueuer at best) and narrow 1.01-1.05x (0.92x at fillfactor 50,
where every claim was HOT): the triggers that keep a narrow table cost what the HOT
updates save, and what is left is the per-job work of a durable result, its events and
the status on the request row itself.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import tempfile
from pathlib import Path
from typing import Any

from eve import queue
from eve.queries import load
from tests.bench import bench_queue as bq
from tests.bench._stack import embedded_postgres

JOBS = int(os.environ.get("EVE_PROBE_JOBS", "6000"))
ROUNDS = int(os.environ.get("EVE_PROBE_ROUNDS", "5"))

TRIMMED = """
DROP INDEX eve.idx_requests_created, eve.idx_requests_org_created, eve.idx_requests_finished,
           eve.idx_results_org_created;
DO $$DECLARE r record; BEGIN
    FOR r IN SELECT conrelid::regclass AS t, conname FROM pg_constraint
             WHERE contype = 'f' AND conrelid IN ('eve.orchestration_results'::regclass, 'eve.request_events'::regclass)
    LOOP EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname); END LOOP;
END$$;
"""

NARROW = """
CREATE TABLE eve.request_queue (
    id uuid PRIMARY KEY, org_id uuid NOT NULL, worker_type text NOT NULL, priority int NOT NULL,
    fair_seq bigint NOT NULL, run_after timestamptz NOT NULL, created_at timestamptz NOT NULL,
    blocked_by uuid[] NOT NULL, running boolean NOT NULL);
CREATE INDEX rq_poll ON eve.request_queue (worker_type, priority DESC, fair_seq, run_after, created_at)
    WHERE NOT running AND blocked_by = '{}';
CREATE INDEX rq_org ON eve.request_queue (org_id, worker_type, priority, fair_seq) WHERE NOT running;
CREATE INDEX rq_blocked ON eve.request_queue USING gin (blocked_by) WHERE blocked_by <> '{}';
GRANT ALL ON eve.request_queue TO service_role, eve_api;
DROP INDEX eve.idx_requests_fair, eve.idx_requests_org_pending, eve.idx_requests_blocked, eve.idx_requests_lease;
ALTER TABLE eve.orchestration_requests SET (fillfactor = 80);

CREATE FUNCTION eve.rq_inserted() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, eve AS $$
BEGIN
    INSERT INTO eve.request_queue
    SELECT id, org_id, worker_type, priority, fair_seq, run_after, created_at, blocked_by, false
    FROM new_rows WHERE status = 'pending';
    RETURN NULL;
END $$;
CREATE TRIGGER rq_inserted AFTER INSERT ON eve.orchestration_requests REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION eve.rq_inserted();

CREATE FUNCTION eve.rq_changed() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, eve AS $$
BEGIN
    IF NEW.status = 'pending' THEN
        INSERT INTO eve.request_queue VALUES (NEW.id, NEW.org_id, NEW.worker_type, NEW.priority, NEW.fair_seq,
                                              NEW.run_after, NEW.created_at, NEW.blocked_by, false)
        ON CONFLICT (id) DO UPDATE SET priority = EXCLUDED.priority, fair_seq = EXCLUDED.fair_seq,
            run_after = EXCLUDED.run_after, blocked_by = EXCLUDED.blocked_by, running = false;
    ELSIF NEW.status IN ('claimed', 'processing') THEN
        UPDATE eve.request_queue SET running = true WHERE id = NEW.id AND NOT running;
    ELSE
        DELETE FROM eve.request_queue WHERE id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER rq_changed AFTER UPDATE ON eve.orchestration_requests FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
              AND NOT (OLD.status IN ('claimed', 'processing') AND NEW.status IN ('claimed', 'processing'))
          OR OLD.blocked_by IS DISTINCT FROM NEW.blocked_by OR OLD.run_after IS DISTINCT FROM NEW.run_after
          OR OLD.priority IS DISTINCT FROM NEW.priority OR OLD.fair_seq IS DISTINCT FROM NEW.fair_seq)
    EXECUTE FUNCTION eve.rq_changed();

CREATE OR REPLACE FUNCTION eve.assign_fair_seq() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, eve AS $$
DECLARE v_org bigint; v_head bigint;
BEGIN
    IF NEW.status <> 'pending' THEN RETURN NEW; END IF;
    SELECT q.fair_seq INTO v_org FROM eve.request_queue q
    WHERE q.org_id = NEW.org_id AND q.worker_type = NEW.worker_type AND q.priority = NEW.priority AND NOT q.running
    ORDER BY q.fair_seq DESC LIMIT 1;
    SELECT q.fair_seq INTO v_head FROM eve.request_queue q
    WHERE q.worker_type = NEW.worker_type AND q.priority = NEW.priority AND NOT q.running
      AND q.run_after <= now() AND q.blocked_by = '{}'
    ORDER BY q.priority DESC, q.fair_seq, q.run_after, q.created_at LIMIT 1;
    NEW.fair_seq := greatest(coalesce(v_org + 1, 0), coalesce(v_head, 0));
    RETURN NEW;
END $$;
"""

NARROW_CLAIM = """
WITH candidates AS (
    SELECT q.id FROM eve.request_queue q
    WHERE q.worker_type = %(worker_type)s AND NOT q.running AND q.blocked_by = '{}' AND q.run_after <= now()
    ORDER BY q.priority DESC, q.fair_seq, q.run_after, q.created_at
    LIMIT 10 FOR UPDATE SKIP LOCKED
), locked AS (
    SELECT r.id FROM eve.orchestration_requests r JOIN candidates c ON r.id = c.id
    WHERE r.status = 'pending' FOR UPDATE OF r SKIP LOCKED
), claimed AS (
    UPDATE eve.orchestration_requests r
    SET status = 'claimed', claimed_at = now(), claimed_by = %(worker_id)s, attempts = r.attempts + 1,
        heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
    FROM locked c WHERE r.id = c.id
    RETURNING r.*
), logged AS (
    INSERT INTO eve.request_events (request_id, org_id, kind, data)
    SELECT id, org_id, 'claimed', jsonb_build_object('worker_id', claimed_by, 'attempt', attempts) FROM claimed
)
SELECT * FROM claimed ORDER BY priority DESC, fair_seq, run_after, created_at
"""

BASE_CLAIM = queue._claim_sql
BASE_FINISH = load()["finish_many"]


def _variant_sql(name: str) -> tuple[Any, str]:
    """(claim SQL for a batch size, finish_many) of a variant."""
    if name == "trimmed":
        return (lambda limit: re.sub(r"\), logged AS \(.*?FROM claimed\n\)", ")", BASE_CLAIM(limit), flags=re.S),
                BASE_FINISH)
    if name == "narrow":
        finish = BASE_FINISH.replace(
            """    FROM eve.orchestration_requests d, succeeded s
    WHERE s.ids IS NOT NULL AND d.status = 'pending' AND d.blocked_by <> '{}' AND d.blocked_by && s.ids""",
            """    FROM eve.request_queue q JOIN eve.orchestration_requests d ON d.id = q.id, succeeded s
    WHERE s.ids IS NOT NULL AND q.blocked_by <> '{}' AND q.blocked_by && s.ids AND d.status = 'pending'""")
        assert finish != BASE_FINISH, "finish_many changed: update the probe"
        return (lambda limit: NARROW_CLAIM), finish
    return BASE_CLAIM, BASE_FINISH


async def measure(admin: str) -> dict[str, list[float]]:
    dbs = {}
    for name, ddl in (("eve", ""), ("trimmed", TRIMMED), ("narrow", NARROW)):
        dbs[name] = await bq.eve_setup(admin, f"probe_{name}")
        if ddl:
            async with await bq.connect(dbs[name][0]) as c:
                await c.execute(ddl)
    out: dict[str, list[float]] = {name: [] for name in (*dbs, "pgqueuer")}
    try:
        for i in range(ROUNDS):
            for name, (dsn, tenant) in dbs.items():
                queue._claim_sql, load()["finish_many"] = _variant_sql(name)  # type: ignore[assignment]
                out[name].append(await bq.eve_throughput(dsn, tenant, 10, jobs=JOBS))
            out["pgqueuer"].append((await bq.pgqueuer_throughput(admin, jobs=JOBS, db=f"probe_pgqueuer_{i}"))[0])
            print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in out.items()), flush=True)
    finally:
        queue._claim_sql, load()["finish_many"] = BASE_CLAIM, BASE_FINISH  # type: ignore[assignment]
    return out


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="eve-probe-") as tmp, \
            embedded_postgres(Path(tmp), max_connections="200") as admin:
        res = asyncio.run(measure(admin))
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"\n| variant ({JOBS:,} jobs, 4 consumers, claims of 10; median of {ROUNDS}) | jobs/s | vs eve | vs pgqueuer |")
    print("|---|---|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:,.0f} | {v / med['eve']:.2f}x | {v / med['pgqueuer']:.2f}x |")
    return {"jobs": JOBS, "rounds": ROUNDS, "runs": res, "median": med}


if __name__ == "__main__":
    run()
