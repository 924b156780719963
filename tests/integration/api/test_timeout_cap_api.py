"""A request's timeoutMs above the agents' wall-time cap (#28) is a 400 that names the cap.

The cap is the workers' EVE_AGENT_MAX_MINUTES, given to the API too, narrowed by the
worker type's `limits.max_minutes`; at the cap a request is accepted.
"""

from __future__ import annotations

from tests.integration.api.conftest import client_for
from tests.support.apiserver import start_api
from tests.support.tenants import make_tenant


async def test_timeout_over_the_cap_is_400_naming_it_and_a_type_narrows_it(db_url, conn, tmp_path):
    await conn.execute("UPDATE eve.worker_types SET config = config || '{\"limits\": {\"max_minutes\": 2}}' "
                       "WHERE id = 'code-review'")
    api = start_api(db_url, tmp_path, env={"EVE_AGENT_MAX_MINUTES": "5"})
    try:
        api.wait_ready()
        alice = client_for(api, await make_tenant(conn, "cap-org"))
        over = alice.http.post("/requests", json={"workerType": "general", "prompt": "x",
                                                   "config": {"timeoutMs": 5 * 60_000 + 1}})
        assert over.status_code == 400, over.text
        assert over.json()["error"] == "timeout_over_cap"
        assert "cap of 300000 ms (5 min)" in over.json()["message"]
        at = alice.http.post("/requests", json={"workerType": "general", "prompt": "x",
                                                 "config": {"timeoutMs": 5 * 60_000}})
        assert at.status_code == 201, at.text
        narrowed = alice.http.post("/requests", json={"workerType": "code-review", "prompt": "x",
                                                       "config": {"timeoutMs": 3 * 60_000}})
        assert narrowed.status_code == 400 and "cap of 120000 ms (2 min)" in narrowed.json()["message"]
    finally:
        api.stop()
