"""POST /requests costs at most four round trips to PostgreSQL, counted on the wire.

Today one: the caller's identity and INSERT ... RETURNING sent together, one implicit
transaction that the pipeline's Sync commits (eve.db.one_statement_as_user), when the
worker type and the org's limits are cached.
No health query at checkout, no worker-type lookup, no SAVEPOINT, no re-read for the
response. The API runs as a real process behind a counting proxy (tests/support/pgproxy.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.rows import dict_row

from eve import migrate
from eve.pg import EmbeddedPostgres

from tests.integration.api.conftest import client_for
from tests.support.apiserver import ApiProcess, start_api
from tests.support.pgharness import FAST_SETTINGS
from tests.support.pgproxy import PgProxy
from tests.support.tenants import make_tenant


@pytest.fixture
def proxy(db_url) -> Iterator[PgProxy]:
    p = PgProxy(db_url).start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def proxied_api(proxy, tmp_path) -> Iterator[ApiProcess]:
    server = start_api(proxy.dsn, tmp_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


async def test_post_requests_takes_at_most_four_round_trips(proxied_api, proxy, conn):
    client = client_for(proxied_api, await make_tenant(conn, "trips"))
    body = {"workerType": "general", "prompt": "count my round trips"}
    # warm up: the worker-type cache fills, and psycopg prepares the INSERT on each pooled
    # connection after 5 runs (one extra round trip, once per connection)
    for _ in range(12):
        assert client.http.post("/requests", json=body).status_code == 201
    per_post = []
    for _ in range(5):
        before = proxy.round_trips()
        r = client.http.post("/requests", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "pending" and r.json()["result"] is None
        per_post.append(proxy.round_trips() - before)
    assert max(per_post) <= 4, per_post
    assert per_post == [1] * 5, per_post  # what it is today; a new statement should be a decision
    # an unknown worker type is still a 4xx with the usual body (and costs the cache a re-read)
    r = client.http.post("/requests", json={"workerType": "nope", "prompt": "x"})
    assert r.status_code in (400, 404, 422) and set(r.json()) >= {"error", "message"}


async def test_a_new_worker_type_is_usable_at_once(proxied_api, conn):
    client = client_for(proxied_api, await make_tenant(conn, "types"))
    assert client.http.post("/requests", json={"workerType": "general", "prompt": "x"}).status_code == 201
    await conn.execute("""INSERT INTO eve.worker_types (id, name, docker_image, config)
                          VALUES ('fresh', 'Fresh', 'eve/fresh', '{"max_attempts": 7}')""")
    r = client.http.post("/requests", json={"workerType": "fresh", "prompt": "x"})
    assert r.status_code == 201, r.text
    assert r.json()["maxAttempts"] == 7


async def test_a_changed_worker_type_reaches_the_cache(proxied_api, conn):
    client = client_for(proxied_api, await make_tenant(conn, "change"))
    body = {"workerType": "data", "prompt": "x"}
    assert client.http.post("/requests", json=body).json()["maxAttempts"] == 3
    await conn.execute("""UPDATE eve.worker_types SET config = config || '{"max_attempts": 5}' WHERE id = 'data'""")
    # the cache is dropped when the API hears eve_worker_types: wait for that, with a deadline
    deadline = time.monotonic() + 20
    while (got := client.http.post("/requests", json=body).json()["maxAttempts"]) != 5:
        assert time.monotonic() < deadline, f"still {got}"
        time.sleep(0.05)


async def test_post_after_a_database_restart_reconnects_instead_of_failing(tmp_path):
    """Pooled connections are not checked at checkout: a dead one is replaced when BEGIN fails."""
    pg = EmbeddedPostgres(tmp_path / "pg", port=0, settings=FAST_SETTINGS)
    dsn = pg.start()
    api = None
    try:
        await migrate.migrate(dsn)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as c:
            t = await make_tenant(c, "restart")
        api = start_api(dsn, tmp_path, env={"EVE_API_POOL_SIZE": "4"})
        api.wait_ready()
        client = client_for(api, t)
        body = {"workerType": "general", "prompt": "x"}
        for _ in range(4):  # several pooled connections, all of which die with the server
            assert client.http.post("/requests", json=body).status_code == 201
        pg.stop(mode="fast")
        pg.start()
        r = client.http.post("/requests", json=body)
        assert r.status_code == 201, r.text
    finally:
        if api is not None:
            api.stop()
        pg.stop(mode="immediate")
