"""Property-based: schemathesis drives every operation of /schema; no 5xx, responses match the schema.

"Match" is checked by schemathesis itself: the status code is one the operation declares,
the content type is the declared one, and the body validates against the declared
response schema (typed for the auth, error and token bodies; a JSON object or list for
the rest, whose shapes docs/api.md and the API tests hold). Errors must also be exactly
{"error", "message"}.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import content_type_conformance, response_schema_conformance, status_code_conformance

pytestmark = pytest.mark.slow

CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]
SKIP = {("GET", "/events/stream"), ("GET", "/metrics")}  # endless streams / non-JSON text


def test_schemathesis_finds_no_server_errors(api, alice):
    raw = httpx.get(f"{api.url}/schema/openapi.json").json()
    schema = schemathesis.openapi.from_dict(raw)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 15
    headers = {"Authorization": f"Bearer {alice.token}"}
    failures: list[str] = []
    seen: dict[int, int] = {}

    for op in operations:
        if (op.method.upper(), op.path) in SKIP:
            continue

        @given(case=op.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            hdrs = dict(headers)
            if op.path.endswith("/events"):
                hdrs["Accept"] = "application/json"  # the SSE form never ends by itself
            case.headers = {**(case.headers or {}), **hdrs}
            response = case.call(base_url=api.url, timeout=10)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:200]}")
            elif response.status_code >= 400:
                ctype = (response.headers.get("content-type") or [""])[0]
                body = response.json() if ctype.startswith("application/json") else None
                assert isinstance(body, dict) and set(body) == {"error", "message"}, (
                    case.method, case.formatted_path, response.status_code, response.text[:300])
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception as exc:  # noqa: BLE001 - collected, reported together below
                failures.append(f"{case.method} {case.formatted_path} → {response.status_code}: "
                                f"does not match the schema: {str(exc)[:300]}")

        check()
    assert failures == []
    assert seen.get(200, 0) + seen.get(201, 0) + seen.get(202, 0) > 20, seen  # it really got past auth
