"""Threat: an agent makes its tool print NUL characters (`head -c 9 /dev/zero`), or answers with
one. PostgreSQL's text and jsonb cannot store NUL: the event batch and the result failed to be
written, the worker's task for the request died, and the request was retried until it failed
`worker_lost` — any agent could make its own runs unrecordable and burn its attempts. Now NUL
is stored as U+FFFD (eve.queue.without_nul), in events and in results."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

from eve import queue
from eve.models import Outcome
from tests.e2e.conftest import claude_bin, fake_api, variant_bin  # noqa: F401 - the real Claude Code CLI's fixtures
from tests.support.tenants import make_tenant
from tests.support.waiting import wait_for
from tests.support.workerproc import start_worker

NUL = "\x00"


async def test_events_and_results_with_nul_are_stored_with_a_replacement_character(conn):
    tenant = await make_tenant(conn, "nul")
    reqs = [await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                prompt=f"p{i}") for i in range(3)]
    claimed = {r.id: r for r in await queue.claim(conn, "general", "w1", limit=3)}
    await queue.append_events(conn, reqs[0].id, tenant.org_id, [("tool_result", {"content": f"a{NUL}b", f"k{NUL}": 1})])
    [event] = [e for e in await queue.list_events(conn, reqs[0].id) if e.kind == "tool_result"]
    assert event.data == {"content": "a\ufffdb", "k\ufffd": 1}

    res = await queue.complete(conn, claimed[reqs[0].id], "w1", Outcome(
        status="success", summary=f"done{NUL}", output={"result": f"x{NUL}y", "items": [NUL]}))
    assert res.summary == "done\ufffd" and res.output == {"result": "x\ufffdy", "items": ["\ufffd"]}
    res = await queue.complete(conn, claimed[reqs[1].id], "w1", Outcome(
        status="failed", error=f"bad{NUL}", error_code="agent_error"))
    assert res.error == "bad\ufffd"
    many = await queue.complete_many(conn, "w1", [(claimed[reqs[2].id], Outcome(status="success",
                                                                                summary=f"m{NUL}"))])
    assert many[reqs[2].id].summary == "m\ufffd"


@pytest.mark.e2e
async def test_an_agent_printing_nul_still_gets_its_result(db_url, conn, tmp_path, variant_bin):
    tenant = await make_tenant(conn, "nul-agent")
    w = start_worker(db_url, tmp_path, path_prepend=variant_bin, env={"EVE_LEASE_SECONDS": "3"})
    try:
        w.wait_healthy()
        req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                  prompt="[[bash: head -c 9 /dev/zero; echo after-the-zeros]]")
        with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as c:
            res = wait_for(lambda: c.execute("SELECT status, error FROM eve.orchestration_results "
                                             "WHERE request_id = %s", (req.id,)).fetchone(), 90, "the result")
            attempts = c.execute("SELECT attempts FROM eve.orchestration_requests WHERE id = %s",
                                 (req.id,)).fetchone()["attempts"]
            contents = [str(e["data"].get("content")) for e in c.execute(
                "SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'tool_result'",
                (req.id,)).fetchall()]
    finally:
        w.stop()
    assert res["status"] == "success" and attempts == 1, (res, attempts)
    assert any("after-the-zeros" in t and "\ufffd" in t for t in contents), contents
