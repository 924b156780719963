"""The agent's network, played by a hostile agent through the real Claude Code CLI.

Under bwrap the agent has its own network namespace; its one way out is the worker's
allowlisting proxy (eve.executor.egress). Two listeners on the host's loopback stand for
the platform: a canary (anything PostgreSQL, a health port or the metadata service would
be) that nothing may reach, and a host the operator allowed with --agent-net-allow. The
agent tries the canary, PostgreSQL and 169.254.169.254 directly, through HTTP_PROXY,
with a raw CONNECT and on the proxy's Unix socket itself; then fetches the allowed host.
That the agent runs at all shows the provider (the fake API, named by the variant) is
reachable through the same proxy.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.e2e.test_worker_e2e import events_of, result_of, submit
from tests.support.tenants import make_tenant
from tests.support.workerproc import start_worker

pytestmark = pytest.mark.e2e

PROBE = r"""
import json, socket, urllib.error, urllib.request
CANARY, ALLOWED, PG = {canary}, {allowed}, {pg}
out = {{}}

def direct(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "connected"
    except OSError as exc:
        return "failed: " + exc.__class__.__name__

def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return "ok %d %s" % (r.status, r.read().decode())
    except urllib.error.HTTPError as exc:
        return "http %d %s" % (exc.code, exc.read().decode().strip())
    except Exception as exc:
        return "error " + repr(exc)

def raw(sock, line):
    try:
        sock.sendall(line.encode() + b"\r\n\r\n")
        return sock.recv(200).decode().split("\r\n")[0]
    except OSError as exc:
        return "failed: " + exc.__class__.__name__

out["direct_canary"] = direct("127.0.0.1", CANARY)
out["direct_pg"] = direct("127.0.0.1", PG)
out["direct_metadata"] = direct("169.254.169.254", 80)
out["proxy_canary"] = fetch("http://127.0.0.1:%d/" % CANARY)
out["proxy_metadata"] = fetch("http://169.254.169.254/latest/meta-data/")
out["connect_pg"] = raw(socket.create_connection(("127.0.0.1", 3128)), "CONNECT 127.0.0.1:%d HTTP/1.1" % PG)
unix = socket.socket(socket.AF_UNIX)
unix.connect("/run/eve-egress.sock")
out["unix_canary"] = raw(unix, "CONNECT 127.0.0.1:%d HTTP/1.1" % CANARY)
out["proxy_allowed"] = fetch("http://127.0.0.1:%d/hello" % ALLOWED)
print("NET=" + json.dumps(out))
"""


@contextmanager
def listener(reply: bytes | None) -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server on 127.0.0.1 recording what each connection sent; answers `reply` if given."""
    srv = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    seen.append(conn.recv(4096))
                    if reply is not None:
                        conn.sendall(reply)
                except OSError:
                    seen.append(b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1], seen
    finally:
        stop.set()
        thread.join(5)
        srv.close()


async def test_a_hostile_agent_reaches_only_what_the_allowlist_names(db_url, conn, tmp_path, variant_bin):
    tenant = await make_tenant(conn, "egress")
    pg_port = int(conninfo_to_dict(db_url)["port"])
    body = b"hello from an allowed host"
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    with listener(None) as (canary, canary_seen), listener(ok) as (allowed, allowed_seen):
        script = PROBE.format(canary=canary, allowed=allowed, pg=pg_port)
        worker = start_worker(db_url, tmp_path, path_prepend=variant_bin, name="egress",
                              args=["--sandbox", "bwrap", "--agent-net-allow", f"127.0.0.1:{allowed}"])
        try:
            health = worker.wait_healthy()
            assert (health["sandbox"], health["network"]) == ("bwrap", "filtered"), health
            row = await (await conn.execute("SELECT sandbox, network FROM eve.workers WHERE id = %s",
                                            (health["worker_id"],))).fetchone()
            assert (row["sandbox"], row["network"]) == ("bwrap", "filtered")  # what `eve workers` shows
            encoded = base64.b64encode(script.encode()).decode()
            req = await submit(conn, tenant, f"[[bash: echo {encoded} | base64 -d | python3]]")
            res = result_of(db_url, req.id, timeout=120)
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.health_port}/metrics", timeout=5) as resp:
                scraped = resp.read().decode()
        finally:
            worker.stop()
        events = events_of(db_url, req.id)
        assert res["status"] == "success", res
        tool_out = next(e["data"]["content"] for e in events if e["kind"] == "tool_result")
        seen = json.loads(tool_out.split("NET=", 1)[1].splitlines()[0])
        assert canary_seen == [], canary_seen  # nothing of the host's network but the allowlist
    for key in ("direct_canary", "direct_pg", "direct_metadata"):
        assert seen[key].startswith("failed"), seen
    assert seen["proxy_canary"].startswith("http 403") and f"127.0.0.1:{canary}" in seen["proxy_canary"], seen
    assert "EVE_AGENT_NET_ALLOW" in seen["proxy_canary"], seen  # the refusal says what an operator can do
    assert seen["proxy_metadata"].startswith("http 403"), seen
    assert seen["connect_pg"].startswith("HTTP/1.1 403"), seen
    assert seen["unix_canary"].startswith("HTTP/1.1 403"), seen
    assert seen["proxy_allowed"] == f"ok 200 {body.decode()}", seen
    assert len(allowed_seen) == 1 and allowed_seen[0].startswith(b"GET /hello HTTP/1.1\r\n"), allowed_seen
    assert b"connection: close" in allowed_seen[0].lower()
    counts = {line.split('"')[1]: float(line.split()[-1]) for line in scraped.splitlines()
              if line.startswith("eve_agent_egress_total{")}
    assert counts["refused"] == 4 and counts["allowed"] >= 2, counts  # the allowed host, and the provider
    spawned = next(e["data"] for e in events if e["kind"] == "spawned")
    assert spawned["network"] == "filtered"
    refused = sorted(e["data"]["target"] for e in events if e["kind"] == "egress_refused")
    assert refused == sorted([f"127.0.0.1:{canary}", "169.254.169.254:80", f"127.0.0.1:{pg_port}",
                              f"127.0.0.1:{canary}"]), refused
