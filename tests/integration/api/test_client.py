"""eve.client.EveClient against the real API: what the CLI and the TUI rely on."""

from __future__ import annotations

import httpx
import pytest

from eve.client import ApiError, ApiUnreachable, EveClient
from eve.pg import free_port


async def test_client_round_trip(api, alice, db_url):
    async with EveClient(api.url, api_key=alice.tenant.api_key) as c:
        req = await c.create_request("general", "hello", context={"a": 1}, config={"timeoutMs": 5000})
        assert req["status"] == "pending" and req["config"] == {"timeoutMs": 5000}
        assert (await c.get_request(req["id"]))["context"] == {"a": 1}
        assert await c.get_result(req["id"]) is None  # no result yet, but the request exists
        page = await c.list_requests(limit=10)
        assert [i["id"] for i in page["items"]] == [req["id"]] and page["nextCursor"] is None
        assert {q["workerType"] for q in await c.queue()} >= {"general"}
        assert (await c.status())["database"] == "ok"
        assert await c.workers() == []
        assert len(await c.worker_types()) == 4
        assert (await c.cancel(req["id"]))["status"] == "cancelled"
        assert (await c.replay(req["id"]))["replayOf"] == req["id"]
        assert [e["kind"] for e in await c.list_events(req["id"])] == ["cancelled", "replayed"]
        frames = [ev async for ev in c.stream_events(req["id"])]
        assert [f.event for f in frames] == ["request_event", "request_event", "end"]
        with pytest.raises(ApiError) as info:
            await c.get_request("00000000-0000-0000-0000-000000000000")
        assert info.value.status == 404
        with pytest.raises(ApiError) as info:
            await c.get_result("00000000-0000-0000-0000-000000000000")
        assert info.value.status == 404
        with pytest.raises(ApiError, match="Invalid worker type"):
            await c.create_request("nope", "x")


async def test_expired_token_is_refreshed_once(api, alice):
    async with EveClient(api.url, api_key=alice.tenant.api_key, token="stale.jwt.value") as c:
        assert (await c.status())["api"] == "ok"  # 401 → new token from the key → retried


async def test_bad_key_and_unreachable_api_are_clear():
    port = free_port()
    async with EveClient(f"http://127.0.0.1:{port}", api_key="eve_x") as c:
        with pytest.raises(ApiUnreachable) as info:
            await c.status()
    assert f"cannot reach API at http://127.0.0.1:{port} (connection refused)" in info.value.message
    assert "eve up" in info.value.message


async def test_wrong_key_says_how_to_fix(api):
    async with EveClient(api.url, api_key="eve_00000000_" + "x" * 43) as c:
        with pytest.raises(ApiError) as info:
            await c.status()
    assert info.value.status == 401 and "eve config set api-key" in info.value.message
    assert httpx.get(f"{api.url}/health").status_code == 200
