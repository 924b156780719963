"""/schedules over real HTTP: create, list, get (next 5 fire times), patch, delete, run; 4xx shapes; tenancy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import Client


def create(c: Client, **body: Any) -> httpx.Response:
    body.setdefault("name", "nightly")
    body.setdefault("cronExpression", "0 3 * * *")
    body.setdefault("workerType", "code-review")
    body.setdefault("prompt", "review the dependencies")
    return c.http.post("/schedules", json=body)


def error(r: httpx.Response) -> dict[str, str]:
    body = r.json()
    assert set(body) == {"error", "message"}, body
    return body


def test_create_get_list_with_next_fire_times(alice):
    r = create(alice, timezone="Europe/Berlin", context={"repo": "acme/api"}, config={"timeoutMs": 600000})
    assert r.status_code == 201, r.text
    s = r.json()
    assert (s["name"], s["cronExpression"], s["timezone"], s["workerType"]) == (
        "nightly", "0 3 * * *", "Europe/Berlin", "code-review")
    assert s["enabled"] is True and s["overlap"] == "skip" and s["maxDelayS"] == 600
    assert s["context"] == {"repo": "acme/api"} and s["config"] == {"timeoutMs": 600000}
    times = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in s["nextFireTimes"]]
    assert len(times) == 5 and times == sorted(times) and s["nextFireAt"] == s["nextFireTimes"][0]
    assert all(t.hour in (1, 2) and t.minute == 0 for t in times)  # 03:00 Berlin is 01:00 or 02:00 UTC
    got = alice.http.get(f"/schedules/{s['id']}").json()
    assert got["id"] == s["id"] and got["fires"] == [] and got["lastFire"] is None
    assert alice.http.get("/schedules/nightly").json()["id"] == s["id"]  # by name too
    items = alice.http.get("/schedules").json()["items"]
    assert [i["name"] for i in items] == ["nightly"]


@pytest.mark.parametrize(("body", "code", "needle"), [
    ({"cronExpression": "61 * * * *"}, "invalid_cron", "bad minute field '61'"),
    ({"cronExpression": "0 3 * *"}, "invalid_cron", "needs 5"),
    ({"cronExpression": "0 3 * * * *"}, "invalid_cron", "6 fields"),
    ({"cronExpression": "@sometimes"}, "invalid_cron", "unknown cron macro"),
    ({"timezone": "Mars/Olympus"}, "invalid_input", "IANA"),
    ({"workerType": "nope"}, "invalid_worker_type", "Invalid worker type"),
    ({"name": "has spaces"}, "invalid_input", "schedule name"),
    ({"overlap": "sometimes"}, "invalid_input", "overlap"),
    ({"maxDelayS": -5}, "invalid_input", "maxDelayS"),
    ({"prompt": "   "}, "invalid_input", "prompt"),
    ({"surprise": 1}, "invalid_input", "surprise"),
])
def test_bad_input_is_a_400_naming_the_problem(alice, body, code, needle):
    r = create(alice, **body)
    assert r.status_code == 400, r.text
    e = error(r)
    assert e["error"] == code and needle in e["message"], e


def test_duplicate_name_is_409_and_unknown_is_404(alice, bob):
    assert create(alice).status_code == 201
    r = create(alice, cronExpression="@hourly")
    assert r.status_code == 409 and error(r)["error"] == "schedule_exists"
    assert create(bob).status_code == 201  # names are per org
    for method, path in (("GET", "/schedules/ghost"), ("PATCH", "/schedules/ghost"), ("DELETE", "/schedules/ghost"),
                         ("POST", "/schedules/ghost/run"),
                         ("GET", "/schedules/00000000-0000-4000-8000-000000000000")):
        r = alice.http.request(method, path, json={} if method == "PATCH" else None)
        assert r.status_code == 404 and error(r)["error"] == "not_found", (method, path, r.text)
    r = alice.http.get("/schedules/not a name!")
    assert r.status_code == 400 and error(r)["error"] == "invalid_input"


def test_other_orgs_schedules_are_invisible(alice, bob):
    theirs = create(bob, name="bobs").json()
    assert alice.http.get("/schedules").json()["items"] == []
    for method, path in (("GET", f"/schedules/{theirs['id']}"), ("PATCH", f"/schedules/{theirs['id']}"),
                         ("DELETE", f"/schedules/{theirs['id']}"), ("POST", f"/schedules/{theirs['id']}/run")):
        r = alice.http.request(method, path, json={"enabled": False} if method == "PATCH" else None)
        assert r.status_code == 404, (method, r.text)
    still = bob.http.get(f"/schedules/{theirs['id']}").json()
    assert still["enabled"] is True and still["fires"] == []


def test_pause_resume_patch_and_delete(alice):
    s = create(alice).json()
    paused = alice.http.patch(f"/schedules/{s['id']}", json={"enabled": False}).json()
    assert paused["enabled"] is False and paused["nextFireAt"] is None and paused["nextFireTimes"] == []
    resumed = alice.http.patch("/schedules/nightly", json={"enabled": True, "cronExpression": "@hourly",
                                                            "overlap": "allow", "maxDelayS": 60}).json()
    assert resumed["enabled"] and resumed["cronExpression"] == "@hourly" and resumed["overlap"] == "allow"
    times = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in resumed["nextFireTimes"]]
    assert all(t.minute == 0 for t in times) and (times[1] - times[0]).total_seconds() == 3600
    r = alice.http.patch("/schedules/nightly", json={"cronExpression": "0 3 * * 8"})
    assert r.status_code == 400 and "bad day-of-week field '8'" in error(r)["message"]
    r = alice.http.patch("/schedules/nightly", json={"prompt": 5})
    assert r.status_code == 400
    assert alice.http.delete("/schedules/nightly").status_code == 204
    assert alice.http.get(f"/schedules/{s['id']}").status_code == 404


def test_run_now_creates_a_request_carrying_schedule_id(alice):
    s = create(alice, enabled=False, context={"pr": 42}).json()
    r = alice.http.post("/schedules/nightly/run")
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["scheduleId"] == s["id"] and req["workerType"] == "code-review"
    assert req["prompt"] == "review the dependencies" and req["context"] == {"pr": 42}
    assert alice.http.get(f"/requests/{req['id']}").json()["scheduleId"] == s["id"]
    listed = alice.http.get("/requests").json()["items"]
    assert listed[0]["id"] == req["id"] and listed[0]["scheduleId"] == s["id"]
    got = alice.http.get("/schedules/nightly").json()
    assert got["lastFire"]["outcome"] == "manual" and got["lastFire"]["requestId"] == req["id"]
    assert got["lastFire"]["requestStatus"] == "pending"
    assert [f["outcome"] for f in got["fires"]] == ["manual"]
    # ordinary requests have no schedule
    plain = alice.http.post("/requests", json={"workerType": "general", "prompt": "x"}).json()
    assert plain["scheduleId"] is None


def test_openapi_lists_the_schedule_operations(api):
    paths = httpx.get(f"{api.url}/schema/openapi.json").json()["paths"]
    assert {"post", "get"} <= set(paths["/schedules"])
    assert {"get", "patch", "delete"} <= set(paths["/schedules/{schedule}"])
    assert "post" in paths["/schedules/{schedule}/run"]
