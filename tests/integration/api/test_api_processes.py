"""Several API processes on one port (`--reuse-port`, as `eve up --api-processes N` runs them).

Each process has its own pool, SSE hub and presence row; what they share is PostgreSQL. Two
processes serve the same port, every firehose subscriber (wherever the kernel placed its
connection) receives the events, and one process stopping leaves the other serving.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest

from eve.client import EveClient
from eve.pg import free_port
from tests.integration.api.test_sse import add_events, until
from tests.support.apiserver import start_api
from tests.support.tenants import make_tenant
from tests.support.waiting import async_wait_for

pytestmark = pytest.mark.asyncio


async def test_two_processes_share_the_port_and_every_subscriber_gets_the_events(db_url, conn, tmp_path):
    port, secret = free_port(), secrets.token_hex(32)
    apis = [start_api(db_url, tmp_path, name=f"api-{i}", port=port, jwt_secret=secret, args=("--reuse-port",))
            for i in (1, 2)]
    try:
        for api in apis:
            api.wait_ready()
        assert all(api.proc.poll() is None for api in apis)  # both bound the same port
        tenant = await make_tenant(conn, "acme")
        url = apis[0].url
        clients = [EveClient(url, api_key=tenant.api_key) for _ in range(8)]
        try:
            seen: list[list[dict[str, Any]]] = [[] for _ in clients]
            tasks = [until(c, "done", seen=s) for c, s in zip(clients, seen)]
            await asyncio.wait_for(asyncio.gather(*(opened.wait() for _, opened in tasks)), 30)
            req = await add_events(db_url, tenant, ["started", "log", "done"])
            for task, _ in tasks:
                await task
            for events in seen:
                assert [e["kind"] for e in events if e["requestId"] == str(req.id)] == ["started", "log", "done"]
            listeners = await async_wait_for(
                lambda: _listeners(conn), 10, "the processes' presence rows")
            assert len(listeners) <= 2 and len(set(listeners)) == len(listeners)
        finally:
            for c in clients:
                await c.aclose()
        apis[0].stop()
        token = httpx.post(f"{url}/auth/token", json={"apiKey": tenant.api_key}, timeout=10).json()["token"]
        for _ in range(5):  # every new connection lands on the process that is left
            r = httpx.post(f"{url}/requests", json={"workerType": "general", "prompt": "still here"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert r.status_code == 201, r.text
    finally:
        for api in apis:
            api.stop()


async def _listeners(conn: Any) -> list[str]:
    cur = await conn.execute("SELECT id FROM eve.event_listeners WHERE expires_at > now()")
    return [r["id"] for r in await cur.fetchall()]
