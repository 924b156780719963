"""Threat: anyone who reaches a worker's health port or the API's `/metrics` (no login: probes
and scrapers have none) learns which tenants run what and what they spend. Without the
metrics token, `/health` names no request and `/metrics` has no org id and no cost."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from eve import queue
from tests.e2e.conftest import claude_bin, fake_api, variant_bin  # noqa: F401 - the real Claude Code CLI's fixtures
from tests.support.apiserver import start_api
from tests.support.tenants import make_tenant
from tests.support.waiting import wait_for
from tests.support.workerproc import start_worker

SLOW_ECHO = '[[slow: 0.25]] [[bash: echo "busy"]]'  # a few seconds of streaming: /health is read meanwhile


def _one(dsn: str, sql: str, *args: Any) -> dict[str, Any] | None:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as c:
        return c.execute(sql, args).fetchone()


def _scrape(url: str, token: str | None = None) -> httpx.Response:
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=10)


@pytest.mark.e2e
async def test_worker_health_and_metrics_name_no_request_org_or_cost_without_the_token(
        db_url, conn, tmp_path, variant_bin):
    token = secrets.token_hex(32)
    tenant = await make_tenant(conn, "scraped")
    w = start_worker(db_url, tmp_path, path_prepend=variant_bin, env={"EVE_METRICS_TOKEN": token})
    try:
        w.wait_healthy()
        req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                  prompt=SLOW_ECHO)
        wait_for(lambda: w.health()[1]["slots_busy"] == 1, 60, "the request to run")
        health = json.dumps(w.health()[1])
        assert str(req.id) not in health and str(tenant.org_id) not in health, health
        res = wait_for(lambda: _one(db_url, "SELECT status, cost_usd FROM eve.orchestration_results "
                                            "WHERE request_id = %s", req.id), 90, "the result")
        assert res["status"] == "success" and float(res["cost_usd"]) > 0, res

        url = f"http://127.0.0.1:{w.health_port}/metrics"
        full = _scrape(url, token)
        assert full.status_code == 200 and str(tenant.org_id) in full.text and "eve_cost_usd_total" in full.text
        public = _scrape(url)
        assert public.status_code == 200 and "eve_requests_total" in public.text  # the rest is all there
        assert str(tenant.org_id) not in public.text and "eve_cost_usd" not in public.text
        assert 'org="' not in public.text
        wrong = _scrape(url, token[::-1])
        assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized", wrong.text
        assert str(tenant.org_id) not in wrong.text
    finally:
        w.stop()


async def test_api_metrics_without_the_token_hold_no_org_and_a_wrong_token_is_401(db_url, conn, tmp_path):
    token = secrets.token_hex(32)
    tenant = await make_tenant(conn, "scraped-api")
    await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general", prompt="hi")
    api = start_api(db_url, tmp_path, env={"EVE_METRICS_TOKEN": token})
    try:
        api.wait_ready()
        url = f"{api.url}/metrics"
        public = _scrape(url)
        assert public.status_code == 200 and 'eve_queue_depth{worker_type="general"} 1.0' in public.text
        assert str(tenant.org_id) not in public.text and 'org="' not in public.text
        assert "eve_cost_usd" not in public.text
        assert _scrape(url, token).status_code == 200
        wrong = _scrape(url, "not-the-token")
        assert wrong.status_code == 401 and set(wrong.json()) == {"error", "message"}, wrong.text
        assert "EVE_METRICS_TOKEN" in wrong.json()["message"]
    finally:
        api.stop()
