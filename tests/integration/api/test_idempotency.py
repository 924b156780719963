"""Idempotency-Key on POST /requests: a retry gets the first answer, never a second agent."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import uuid

import httpx
import psycopg
from psycopg.rows import dict_row

from tests.integration.api.conftest import Client

BODY = {"workerType": "general", "prompt": "Echo hello world"}


def _count(db_url: str, org_id, prompt: str) -> int:
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as c:
        return c.execute("SELECT count(*) AS n FROM eve.orchestration_requests WHERE org_id = %s AND prompt = %s",
                         (org_id, prompt)).fetchone()["n"]


def test_a_retry_with_the_key_returns_the_first_request(alice: Client, db_url):
    key = str(uuid.uuid4())
    body = {**BODY, "prompt": f"once {key}", "context": {"b": 1, "a": 2}}
    first = alice.http.post("/requests", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    # the same body sent again, its keys in another order: the same operation
    again = alice.http.post("/requests", content=httpx.Request("POST", "/", json=dict(reversed(body.items()))).content,
                            headers={"Idempotency-Key": key, "Content-Type": "application/json"})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert _count(db_url, alice.tenant.org_id, body["prompt"]) == 1
    # without a key, or with another one, it is a new request
    assert alice.http.post("/requests", json=body).json()["id"] != first.json()["id"]
    assert alice.http.post("/requests", json=body, headers={"Idempotency-Key": key + "-2"}).json()["id"] \
        != first.json()["id"]
    assert _count(db_url, alice.tenant.org_id, body["prompt"]) == 3


def test_the_same_key_with_another_body_is_a_422_naming_the_key(alice: Client, db_url):
    key = "deploy-" + uuid.uuid4().hex[:8]
    assert alice.http.post("/requests", json={**BODY, "prompt": "first"}, headers={"Idempotency-Key": key}).status_code == 201
    r = alice.http.post("/requests", json={**BODY, "prompt": "second"}, headers={"Idempotency-Key": key})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "idempotency_key_reused" and key in r.json()["message"]
    assert _count(db_url, alice.tenant.org_id, "second") == 0


def test_twenty_concurrent_duplicates_make_one_request(alice: Client, db_url):
    key = str(uuid.uuid4())
    body = {**BODY, "prompt": f"concurrent {key}"}

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=str(alice.http.base_url), headers=dict(alice.http.headers), timeout=30) as h:
            return h.post("/requests", json=body, headers={"Idempotency-Key": key})

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, range(20)))
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers if r.status_code != 201]
    assert len({r.json()["id"] for r in answers}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 19
    assert _count(db_url, alice.tenant.org_id, body["prompt"]) == 1


def test_keys_are_per_org_and_expire(alice: Client, bob: Client, db_url):
    key = str(uuid.uuid4())
    body = {**BODY, "prompt": f"per org {key}"}
    a = alice.http.post("/requests", json=body, headers={"Idempotency-Key": key}).json()
    b = bob.http.post("/requests", json=body, headers={"Idempotency-Key": key}).json()
    assert a["id"] != b["id"] and b["orgId"] == str(bob.tenant.org_id)
    with psycopg.connect(db_url, autocommit=True) as c:  # 25 hours later
        c.execute("UPDATE eve.idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = %s", (key,))
    c2 = alice.http.post("/requests", json=body, headers={"Idempotency-Key": key})
    assert c2.status_code == 201 and "idempotent-replayed" not in c2.headers and c2.json()["id"] != a["id"]


def test_a_refused_request_leaves_no_key_behind(alice: Client, db_url):
    key = str(uuid.uuid4())
    bad = alice.http.post("/requests", json={**BODY, "workerType": "no-such-type"}, headers={"Idempotency-Key": key})
    assert bad.status_code == 400
    ok = alice.http.post("/requests", json={**BODY, "prompt": f"after a 400 {key}"}, headers={"Idempotency-Key": key})
    assert ok.status_code == 201 and "idempotent-replayed" not in ok.headers


def test_a_bad_key_is_a_400(alice: Client):
    for key in ("", "x" * 256, "tab\there", "ключ"):
        r = alice.http.post("/requests", json=BODY, headers={"Idempotency-Key": key.encode()})
        assert r.status_code == 400 and "Idempotency-Key" in r.json()["message"], (key, r.text)


def test_the_cli_passes_the_key(alice: Client, api, db_url):
    key = str(uuid.uuid4())
    env = {"EVE_API_URL": api.url, "EVE_API_KEY": alice.tenant.api_key, "PATH": "/usr/bin:/bin",
           "XDG_CONFIG_HOME": "/nonexistent"}
    ids = set()
    for _ in range(2):
        res = subprocess.run([sys.executable, "-m", "eve.cli", "request", "create", "-t", "general", "-p",
                              f"cli {key}", "--idempotency-key", key, "--json"], env=env, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        import json

        ids.add(json.loads(res.stdout)["id"])
    assert len(ids) == 1 and _count(db_url, alice.tenant.org_id, f"cli {key}") == 1
