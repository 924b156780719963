"""The seed's E2E smoke tests, against a real API process and a real worker running Claude Code."""

from __future__ import annotations

import os
import shutil
import time

import httpx
import pytest

from tests.support.apiserver import start_api
from tests.support.tenants import make_tenant
from tests.support.workerproc import start_worker

pytestmark = pytest.mark.e2e


@pytest.fixture
async def stack(db_url, tmp_path, variant_bin, conn):
    tenant = await make_tenant(conn, "smoke")
    api = start_api(db_url, tmp_path)
    workers = [start_worker(db_url, tmp_path, path_prepend=variant_bin, name="general"),
               start_worker(db_url, tmp_path, worker_type="code-review", path_prepend=variant_bin, name="review")]
    try:
        api.wait_ready()
        for w in workers:
            w.wait_healthy()
        token = httpx.post(f"{api.url}/auth/token", json={"apiKey": tenant.api_key}).json()["token"]
        yield api.url, {"Authorization": f"Bearer {token}"}
    finally:
        for w in workers:
            w.stop()
        api.stop()


def wait_for_result(url: str, headers: dict, request_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{url}/results/{request_id}", headers=headers)
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 404, f"unexpected status {r.status_code}: {r.text}"
        time.sleep(0.2)
    raise AssertionError(f"timeout waiting for result: {request_id}")


def test_worker_processes_request_successfully(stack):
    url, headers = stack
    r = httpx.post(f"{url}/requests", headers=headers,
                   json={"workerType": "general", "prompt": 'Echo "smoke test passed" using the Bash tool'})
    assert r.status_code == 201
    request = r.json()
    assert request["id"]
    result = wait_for_result(url, headers, request["id"])
    assert result["status"] == "success"
    assert result["output"] is not None
    assert "smoke test passed" in str(result["output"])
    # "smoke test passed" is also in the prompt (and would be in a denial's text): prove Bash ran.
    # Its tool_result is exactly echo's output, not an error, and nothing was denied.
    events = httpx.get(f"{url}/requests/{request['id']}/events", headers=headers).json()
    results = [e["data"] for e in events if e["kind"] == "tool_result"]
    assert [(r["content"].strip(), bool(r.get("is_error"))) for r in results] == [("smoke test passed", False)]
    assert not (result["output"] or {}).get("permission_denials"), result["output"]
    assert "[tool error]" not in str(result["output"])


@pytest.mark.skipif(not os.environ.get("GH_TOKEN") or shutil.which("gh") is None,
                    reason="needs GH_TOKEN, the GitHub CLI and network access to github.com")
def test_code_review_worker_can_access_github(stack):  # pragma: no cover - not runnable offline
    url, headers = stack
    r = httpx.post(f"{url}/requests", headers=headers, json={
        "workerType": "code-review", "prompt": 'Check if the GitHub CLI is working by running "gh auth status"'})
    result = wait_for_result(url, headers, r.json()["id"])
    assert result["status"] == "success" and "Logged in" in str(result["output"])


def test_request_with_invalid_worker_type_fails_gracefully(stack):
    url, headers = stack
    r = httpx.post(f"{url}/requests", headers=headers,
                   json={"workerType": "nonexistent-worker", "prompt": "This should fail"})
    assert r.status_code == 400
    assert "Invalid worker type" in r.json()["message"]
