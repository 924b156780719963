"""Per-org secrets end to end (#19): set through the real API, encrypted at rest, injected by
the real worker into the real Claude Code CLI's agent of that org only, and masked when the
agent prints them. Also: an org that may not use the platform's keys does not get them."""

from __future__ import annotations

import json

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.e2e.test_worker_e2e import events_of, result_of, submit, sync_conn
from tests.support.apiserver import start_api
from tests.support.tenants import make_tenant
from tests.support.workerproc import start_worker

pytestmark = pytest.mark.e2e

SECRET = "org-a-deploy-token-4f9a1c"
PLATFORM_GH = "platform-gh-token-77aa"
PROMPT = '[[bash: echo "A=$DEPLOY_TOKEN GH=$GH_TOKEN"]]'


def _token(api, key: str) -> httpx.Client:
    tok = httpx.post(f"{api.url}/auth/token", json={"apiKey": key}).json()["token"]
    return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {tok}"}, timeout=30)


async def test_an_orgs_secret_reaches_only_its_agents_and_is_masked(db_url, conn, tmp_path, variant_bin):
    key = Fernet.generate_key().decode()
    org_a, org_b = await make_tenant(conn, "sec-a"), await make_tenant(conn, "sec-b")
    op_t = await make_tenant(conn, "sec-ops", operator=True)
    api = start_api(db_url, tmp_path, env={"EVE_SECRETS_KEY": key})
    worker = start_worker(db_url, tmp_path, path_prepend=variant_bin,
                          env={"EVE_SECRETS_KEY": key, "GH_TOKEN": PLATFORM_GH})
    try:
        api.wait_ready()
        worker.wait_healthy()
        a, op = _token(api, org_a.api_key), _token(api, op_t.api_key)
        assert a.put("/secrets/DEPLOY_TOKEN", json={"value": "first-value-replaced"}).status_code == 200
        r = a.put("/secrets/DEPLOY_TOKEN", json={"value": SECRET})  # replaces it
        assert r.status_code == 200, r.text
        listed = a.get("/secrets").json()
        assert [s["name"] for s in listed] == ["DEPLOY_TOKEN"] and SECRET not in json.dumps(listed)
        assert a.put("/secrets/LD_PRELOAD", json={"value": "/tmp/evil.so"}).status_code == 400
        assert a.put("/secrets/EVE_API_TOKEN", json={"value": "forged-token"}).status_code == 400
        # org B may not use the platform's provider keys / GH_TOKEN
        assert op.put("/orgs/sec-b/limits", json={"platformKeys": False}).status_code == 200

        req_a = await submit(conn, org_a, PROMPT)
        req_b = await submit(conn, org_b, PROMPT)
        res_a, res_b = result_of(db_url, req_a.id, 90), result_of(db_url, req_b.id, 90)
        assert res_a["status"] == "success" and res_b["status"] == "success", (res_a, res_b)

        ev_a, ev_b = events_of(db_url, req_a.id), events_of(db_url, req_b.id)
        out_a = next(e["data"]["content"] for e in ev_a if e["kind"] == "tool_result")
        out_b = next(e["data"]["content"] for e in ev_b if e["kind"] == "tool_result")
        # A's agent had the value (it printed it), and it was masked before anything was stored
        assert f"A=***DEPLOY_TOKEN*** GH={PLATFORM_GH}" in out_a
        assert "***DEPLOY_TOKEN***" in res_a["summary"]
        for stored in (json.dumps([e["data"] for e in ev_a]), json.dumps(res_a["output"]), res_a["summary"] or "",
                       res_a["error"] or ""):
            assert SECRET not in stored
        # B's agent got neither A's secret nor the platform's GH_TOKEN
        assert out_b.strip() == "A= GH=", out_b
        assert SECRET not in json.dumps([e["data"] for e in ev_b]) and PLATFORM_GH not in out_b
        # at rest: ciphertext only; the API's role cannot read it back at all
        with sync_conn(db_url) as c:
            row = c.execute("SELECT ciphertext FROM eve.org_secrets WHERE name = 'DEPLOY_TOKEN'").fetchone()
            assert SECRET.encode() not in bytes(row["ciphertext"])
            assert Fernet(key.encode()).decrypt(bytes(row["ciphertext"])).decode() == SECRET
        assert SECRET not in api.output() and SECRET not in worker.output()
    finally:
        worker.stop()
        api.stop()
