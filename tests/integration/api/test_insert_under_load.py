"""An insert costs the same with 10 pending requests as with 10,000 (#13, migration 0015).

The fair-sequence trigger (0011) looks up the lane's head on every insert. Its plan is
cached per connection; under concurrent POSTs to a young table (statistics not yet
analyzed) the cached plan once read the head through the org index and sorted, which
read every pending request of the lane on every insert: PostgreSQL's CPU per POST
doubled within ten seconds of `wrk` and kept growing with the backlog. Driven here the
way it was found — the real API process, `wrk` with 32 connections — and measured by
what PostgreSQL counts: entries read from the org index per inserted request.
The bad plan depends on when each connection caches it, so without the fix this test
failed in about half of its runs here (2,704 inserts read 850,903 entries): a tripwire.
"""

from __future__ import annotations

import shutil
import time

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.bench.bench_api import wrk_post_load
from tests.integration.api.conftest import client_for
from tests.support.apiserver import start_api
from tests.support.tenants import make_tenant

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None,
                                reason="needs wrk: apt-get install wrk (CI installs it)")


async def test_concurrent_posts_do_not_scan_the_backlog(conn, db_url, tmp_path):
    tenant = await make_tenant(conn, "load")
    api = start_api(db_url, tmp_path, env={"EVE_API_POOL_SIZE": "32", "EVE_LOG_LEVEL": "WARNING"})
    try:
        api.wait_ready()
        wrk = wrk_post_load(api.url, client_for(api, tenant).token, seconds=4)  # the benchmark's own load
    finally:
        api.stop()  # its backends exit and flush their statistics
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as c:
        deadline = time.monotonic() + 30
        while c.execute("""SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()
                           AND backend_type = 'client backend' AND pid NOT IN (pg_backend_pid(), %s)""",
                        (conn.info.backend_pid,)).fetchone()["n"]:
            assert time.monotonic() < deadline, "the API's connections did not close"
            time.sleep(0.05)
        inserted = c.execute("SELECT count(*) AS n FROM eve.orchestration_requests").fetchone()["n"]
        read = c.execute("SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = "
                         "'idx_requests_org_pending'").fetchone()["idx_tup_read"]
    assert wrk["post_non_2xx"] == 0 and inserted > 500, (wrk, inserted)
    # The org's own last request is one entry, plus the newer ones of up to 31 racing
    # inserts it steps over (1-5 per insert measured); the scan read ~300 per insert.
    assert read < 40 * inserted, f"{inserted} inserts read {read} entries of idx_requests_org_pending"
