"""Webhooks end to end on a real PostgreSQL: endpoint over the API, result → outbox (trigger)
→ the delivery loop → a receiver on loopback that checks the Standard Webhooks signature
with the spec's reference library."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest
import standardwebhooks
from cryptography.fernet import Fernet

from eve import queue
from eve.db import make_pool
from eve.orgsecrets import Keyring
from eve.webhooks import guard
from eve.webhooks.outbox import Outbox
from tests.support.apiserver import start_api
from tests.support.tenants import make_tenant
from tests.support.waiting import wait_for

LOOPBACK = [guard.ipaddress.ip_network("127.0.0.0/8")]


class Receiver:
    """An HTTP endpoint on 127.0.0.1 answering a script of statuses (then 200) and keeping what came."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.got: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/eve?x=1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def api(db_url, tmp_path, key):
    server = start_api(db_url, tmp_path, env={"EVE_SECRETS_KEY": key})
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([500])
    try:
        yield r
    finally:
        r.close()


def _http(api, tenant) -> httpx.Client:
    token = httpx.post(f"{api.url}/auth/token", json={"apiKey": tenant.api_key}).json()["token"]
    return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


async def _finish(conn, tenant, status: str = "success") -> Any:
    """A request and its result (the trigger of 0021 writes the deliveries in this transaction)."""
    req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                              prompt=f"hook me {secrets.token_hex(3)}")
    await conn.execute("INSERT INTO eve.orchestration_results (request_id, org_id, status, summary, cost_usd) "
                       "VALUES (%s, %s, %s, 'done', 0.01)", (req.id, tenant.org_id, status))
    await conn.commit()
    return req


class Running:
    """The delivery loop as a worker runs it, in this process, stopped on exit."""

    def __init__(self, db_url: str, key: str, **kw: Any) -> None:
        self.pool = make_pool(db_url, service_only=True)
        self.outbox = Outbox(self.pool, db_url, Keyring([key]), poll_s=60.0, **kw)

    async def __aenter__(self) -> Outbox:
        await self.pool.open(wait=True)
        self.task = asyncio.create_task(self.outbox.run())
        return self.outbox

    async def __aexit__(self, *exc: Any) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.pool.close()


async def _until(predicate, timeout: float, what: str) -> Any:
    return await asyncio.to_thread(wait_for, predicate, timeout, what)


async def test_a_result_is_delivered_signed_and_retried_with_the_same_id(db_url, conn, api, key, receiver):
    tenant = await make_tenant(conn, "hooked")
    with _http(api, tenant) as http:
        r = http.post("/webhooks", json={"url": receiver.url, "events": ["request.completed"]})
        assert r.status_code == 201, r.text
        endpoint = r.json()
        assert endpoint["secret"].startswith("whsec_")
        assert "secret" not in http.get("/webhooks").json()[0]  # shown once, never listed
        async with Running(db_url, key, allow=LOOPBACK, retry_s=(0.2,)):
            req = await _finish(conn, tenant)
            # the poll is 60 s: only the trigger's NOTIFY can make this quick
            await _until(lambda: len(receiver.got) >= 2, 20, "the delivery and its retry after the 500")
            deliveries = await _until(lambda: [d for d in http.get(f"/webhooks/{endpoint['id']}/deliveries").json()
                                               if d["deliveredAt"]], 10, "the delivery marked delivered")
    (h1, b1), (h2, b2) = receiver.got[:2]
    assert h1["webhook-id"] == h2["webhook-id"] == deliveries[0]["messageId"]  # at least once, one id
    payload = standardwebhooks.Webhook(endpoint["secret"]).verify(b2, h2)
    assert payload["type"] == "request.completed" and payload["data"]["requestId"] == str(req.id)
    assert payload["data"]["status"] == "success" and payload["data"]["costUsd"] == 0.01
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):  # a forged body fails it
        standardwebhooks.Webhook(endpoint["secret"]).verify(b2.replace(b"success", b"failed"), h2)
    assert h2["host"].startswith("127.0.0.1:") and deliveries[0]["attempts"] == 2
    assert deliveries[0]["lastStatus"] == 200


async def test_nothing_is_sent_to_a_private_address_unless_the_operator_allows_it(db_url, conn, api, key, receiver):
    tenant = await make_tenant(conn, "ssrf")
    with _http(api, tenant) as http:
        endpoint = http.post("/webhooks", json={"url": receiver.url, "events": ["request.completed"]}).json()
        async with Running(db_url, key, allow=[], retry_s=(0.1,)):
            await _finish(conn, tenant)
            given_up = await _until(lambda: [d for d in http.get(f"/webhooks/{endpoint['id']}/deliveries").json()
                                             if d["givenUpAt"]], 20, "the delivery given up")
    assert receiver.got == []
    assert "loopback" in given_up[0]["lastError"] and given_up[0]["attempts"] == 2


async def test_only_the_orgs_own_endpoints_and_events_are_written(db_url, conn, api, key):
    alice, bob = await make_tenant(conn, "hook-a"), await make_tenant(conn, "hook-b")
    with _http(api, alice) as http:
        fails = http.post("/webhooks", json={"url": "https://example.com/a", "events": ["request.failed"]}).json()
    await _finish(conn, alice, "success")  # not an event it wants
    await _finish(conn, bob, "failed")  # not its org
    await _finish(conn, alice, "timeout")  # request.failed
    rows = await (await conn.execute("SELECT event, payload FROM eve.webhook_deliveries WHERE endpoint_id = %s",
                                     (fails["id"],))).fetchall()
    assert [(r["event"], r["payload"]["data"]["status"]) for r in rows] == [("request.failed", "timeout")]


async def test_endpoints_are_checked_scoped_and_their_secret_unreadable(db_url, conn, api, key):
    alice, bob = await make_tenant(conn, "hook-c"), await make_tenant(conn, "hook-d")
    with _http(api, alice) as a, _http(api, bob) as b:
        for body, words in (({"url": "ftp://x", "events": ["request.completed"]}, "http"),
                            ({"url": "https://user:pw@x.example", "events": ["request.completed"]}, "credentials"),
                            ({"url": "https://x.example", "events": ["request.exploded"]}, "unknown event"),
                            ({"url": "https://x.example", "events": []}, "at least one")):
            r = a.post("/webhooks", json=body)
            assert r.status_code == 400 and words in r.json()["message"], r.text
        mine = a.post("/webhooks", json={"url": "https://x.example/h", "events": ["request.completed"]}).json()
        assert b.get(f"/webhooks/{mine['id']}/deliveries").status_code == 404
        assert b.delete(f"/webhooks/{mine['id']}").status_code == 404
        assert b.get("/webhooks").json() == []
        assert a.post(f"/webhooks/{mine['id']}/test").status_code == 202
        assert a.delete(f"/webhooks/{mine['id']}").json() == {"id": mine["id"], "deleted": True}
    with psycopg.connect(db_url, autocommit=True) as c:  # the API's role may write the secret, never read it
        c.execute("SET ROLE eve_api")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT secret FROM eve.webhook_endpoints")


async def test_an_endpoint_that_keeps_failing_is_disabled_with_the_reason(db_url, conn, api, key):
    tenant = await make_tenant(conn, "hook-e")
    with _http(api, tenant) as http:
        endpoint = http.post("/webhooks", json={"url": "http://127.0.0.1:9/closed", "events": ["request.completed"]}).json()
        async with Running(db_url, key, allow=LOOPBACK, retry_s=()):
            for _ in range(5):
                await _finish(conn, tenant)
            listed = await _until(lambda: [e for e in http.get("/webhooks").json() if e["disabledAt"]], 30,
                                  "the endpoint disabled")
    assert "5 deliveries in a row" in listed[0]["disabledReason"] and "ConnectError" in listed[0]["disabledReason"]
    async def later() -> int:
        await _finish(conn, tenant)
        return (await (await conn.execute("SELECT count(*) AS n FROM eve.webhook_deliveries WHERE endpoint_id = %s",
                                          (endpoint["id"],))).fetchone())["n"]
    assert await later() == 5  # a disabled endpoint hears nothing more


def test_the_guard_refuses_what_is_not_public():
    for ip in ("10.0.0.1", "169.254.169.254", "::1", "::ffff:127.0.0.1", "192.168.1.1", "fd00::1", "0.0.0.0"):
        assert not guard.public(guard.ipaddress.ip_address(ip)), ip
    assert guard.public(guard.ipaddress.ip_address("93.184.216.34"))
    with pytest.raises(guard.Refused, match="169.254.169.254"):
        asyncio.run(guard.resolve("http://169.254.169.254/latest/meta-data"))
    t = asyncio.run(guard.resolve("https://127.0.0.1:8443/x?y=1", LOOPBACK))
    assert t.url == "https://127.0.0.1:8443/x?y=1" and t.sni == "127.0.0.1" and t.host_header == "127.0.0.1:8443"
