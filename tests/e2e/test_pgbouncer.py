"""Poll-only mode end to end through a real PgBouncer in transaction pooling.

EVE_LISTEN=off (API) and `--no-listen` (worker): no LISTEN/NOTIFY, no session state, no
server-side prepared statements. With a pool of 3 server connections shared by the API,
the worker and the test, anything that leaked across transactions would fail here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from eve import roles
from eve.db import API_ROLE, SERVICE_ROLE
from tests.support.apiserver import start_api
from tests.support.pgbouncer import INSTALL, pgbouncer_bin, start_pgbouncer
from tests.support.tenants import make_tenant
from tests.support.waiting import wait_for
from tests.support.workerproc import start_worker

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.skipif(pgbouncer_bin() is None, reason=f"PgBouncer is not installed: {INSTALL}")]
SMOKE = 'Echo "smoke test passed" using the Bash tool'


@pytest.fixture
async def bounced(db_url: str, tmp_path: Path):
    tag = f"{os.getpid()}_{os.urandom(3).hex()}"
    api = roles.LoginRole(f"eve_api_b{tag}", API_ROLE, roles.load_or_create_password(tmp_path, "api"))
    worker = roles.LoginRole(f"eve_worker_b{tag}", SERVICE_ROLE, roles.load_or_create_password(tmp_path, "worker"))
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as su:
        await roles.ensure_login_roles(su, [api, worker])
        tenant = await make_tenant(su, "bounced")
    bouncer = start_pgbouncer(db_url, {api.name: api.password, worker.name: worker.password})
    try:
        yield {"api": bouncer.dsn(api.name, api.password), "worker": bouncer.dsn(worker.name, worker.password),
               "tenant": tenant, "bouncer": bouncer}
    finally:
        bouncer.stop()
        with psycopg.connect(db_url, autocommit=True) as conn:
            for name in (api.name, worker.name):
                conn.execute(psycopg.sql.SQL("DROP OWNED BY {} CASCADE").format(psycopg.sql.Identifier(name)))
                conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(name)))


def _sse_until_end(http: httpx.Client, path: str) -> list[dict]:
    events, kind = [], None
    with http.stream("GET", path, headers={"Accept": "text/event-stream"}, timeout=120) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind == "request_event":
                events.append(json.loads(line.split(":", 1)[1]))
            elif line.startswith("data:") and kind == "end":
                return events
    return events


def test_requests_run_through_pgbouncer_in_poll_only_mode(bounced, tmp_path: Path, variant_bin: Path):
    api = start_api(bounced["api"], tmp_path, env={"EVE_LISTEN": "off"})
    worker = start_worker(bounced["worker"], tmp_path, path_prepend=variant_bin, slots=2, args=["--no-listen"],
                          env={"EVE_POLL_INTERVAL": ""})
    try:
        api.wait_ready()
        worker.wait_healthy()
        tok = httpx.post(f"{api.url}/auth/token", json={"apiKey": bounced["tenant"].api_key}).json()["token"]
        http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {tok}"}, timeout=30)
        ids = []
        for _ in range(4):
            r = http.post("/requests", json={"workerType": "general", "prompt": SMOKE})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        # SSE without LISTEN: the hub polls; the stream sees the live events and ends
        events = _sse_until_end(http, f"/requests/{ids[0]}/events")
        assert any(e["kind"] == "result" for e in events), events

        def finished() -> bool:
            return all(http.get(f"/requests/{i}").json()["status"] in ("completed", "failed") for i in ids)

        wait_for(finished, 180, "all requests to finish through PgBouncer", interval=0.5)
        for i in ids:
            res = http.get(f"/results/{i}")
            assert res.status_code == 200 and res.json()["status"] == "success", res.text
            assert "smoke test passed" in json.dumps(res.json())
        # cancel arrives without NOTIFY too (through the heartbeat)
        r = http.post("/requests", json={"workerType": "general", "prompt": "[[hang]]"})
        rid = r.json()["id"]
        wait_for(lambda: http.get(f"/requests/{rid}").json()["status"] == "processing", 60, "the hang to start",
                 interval=0.2)
        assert http.post(f"/requests/{rid}/cancel").status_code in (200, 202)
        wait_for(lambda: http.get(f"/requests/{rid}").json()["status"] == "cancelled", 90, "the cancel", interval=0.5)
        for text in (worker.output(), api.output()):
            assert "prepared statement" not in text and "Traceback" not in text, text[-3000:]
    finally:
        worker.stop()
        api.stop()
