"""API benchmark on this machine (load generator on loopback, in the same 2 cores).

* POST /requests: throughput and p99 with 32 concurrent connections, driven by `wrk`
  (Debian package `wrk`; tests/bench/wrk_post.lua) when it is installed, else by httpx
  (which burns about half of the two cores itself, so it cannot show much more than
  ~300 req/s); the table says which. The API's pool has one connection per client.
  Run twice: two API processes sharing the port (`--reuse-port`, as `eve up
  --api-processes 2` runs them), each with a pool of half the clients, then one process
  with a pool of all of them. Also the CPU time per POST of the API process(es) and of
  PostgreSQL: on a machine shared with other work these are the fair numbers.
* GET /queue and GET /requests latency with 1,000,000 requests in the table (also filtered
  by a common status and by a rare one);
* SSE fan-out: 200 firehose subscribers (bare sockets, timed as the bytes arrive), time
  from insert to receipt, p99, and the API's CPU time per delivered event.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from eve import queue
from eve.pg import free_port
from tests.bench._stack import bench_database
from tests.support.apiserver import ApiProcess, start_api

POSTS = int(os.environ.get("EVE_BENCH_POSTS", "3000"))
POST_SECONDS = int(os.environ.get("EVE_BENCH_POST_SECONDS", "10"))  # wrk runs for a time, not a count
CLIENTS = 32
WRK_SCRIPT = Path(__file__).with_name("wrk_post.lua")
ROWS = int(os.environ.get("EVE_BENCH_API_ROWS", "1000000"))
SUBSCRIBERS = int(os.environ.get("EVE_BENCH_SUBSCRIBERS", "200"))
FANOUT_EVENTS = 20


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU time of a process and its children (PostgreSQL's backends, uvicorn's workers)."""
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return cpu_seconds(pid) + sum(cpu_seconds(int(k)) for k in kids)


def postmaster_pid(dsn: str) -> int:
    with psycopg.connect(dsn) as c:
        data_dir = c.execute("SHOW data_directory").fetchone()[0]  # type: ignore[index]
    return int((Path(data_dir) / "postmaster.pid").read_text().splitlines()[0])


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def post_load(url: str, headers: dict[str, str]) -> dict[str, float]:
    latencies: list[float] = []
    counter = iter(range(POSTS))
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:
        async def client() -> None:
            for _ in counter:
                t0 = time.perf_counter()
                r = await http.post("/requests", json={"workerType": "general", "prompt": "bench"})
                latencies.append(time.perf_counter() - t0)
                assert r.status_code == 201, r.text

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - start
    return {"load_generator": "httpx", "post_requests": POSTS, "post_rps": POSTS / elapsed,
            "post_p50_ms": pct(latencies, 50) * 1000, "post_p99_ms": pct(latencies, 99) * 1000,
            "post_connection_errors": 0, "post_non_2xx": 0}


def wrk_post_load(url: str, token: str, seconds: int = POST_SECONDS) -> dict[str, Any]:
    """wrk, one thread (the API needs the other core), CLIENTS connections, POST_SECONDS."""
    run = subprocess.run(["wrk", "-t1", f"-c{CLIENTS}", f"-d{seconds}s", "--timeout", "10s",
                          "-s", str(WRK_SCRIPT), f"{url}/requests"],
                         env={**os.environ, "EVE_BENCH_TOKEN": token}, capture_output=True, text=True,
                         timeout=seconds + 60, check=True)
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith("WRK_JSON "))
    w = json.loads(line[len("WRK_JSON "):])
    return {"load_generator": "wrk", "post_requests": w["requests"],
            "post_rps": w["requests"] / (w["duration_us"] / 1e6),
            "post_p50_ms": w["p50_us"] / 1000, "post_p99_ms": w["p99_us"] / 1000,
            "post_connection_errors": w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeouts"],
            "post_non_2xx": w["non_2xx"]}


async def read_latency(url: str, headers: dict[str, str], dsn: str, tenant: Any) -> dict[str, float]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as c:
        await c.execute("""INSERT INTO eve.orchestration_requests
                               (org_id, user_id, worker_type, prompt, status, created_at, finished_at, attempts)
                           SELECT %s, %s, (ARRAY['general','code-review','data'])[1 + g %% 3], 'history',
                                  CASE WHEN g %% 1000 = 0 THEN 'cancelled'  -- a rare status
                                       ELSE (ARRAY['completed','completed','failed'])[1 + g %% 3] END,
                                  now() - make_interval(secs => g), now() - make_interval(secs => g), 1
                           FROM generate_series(1, %s) g""", (tenant.org_id, tenant.user_id, ROWS))
        await c.execute("VACUUM ANALYZE eve.orchestration_requests")
    out: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        for name, path, params in (("queue", "/queue", {}), ("requests", "/requests", {"limit": 50}),
                                   ("requests_failed", "/requests", {"limit": 50, "status": "failed"}),
                                   ("requests_cancelled", "/requests", {"limit": 50, "status": "cancelled"})):
            lat = []
            for _ in range(100):
                t0 = time.perf_counter()
                r = await http.get(path, params=params)
                lat.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
            out[f"get_{name}_p50_ms"] = pct(lat, 50) * 1000
            out[f"get_{name}_p99_ms"] = pct(lat, 99) * 1000
    return out


class _SseSubscriber(asyncio.Protocol):
    """One SSE subscriber on a bare socket: the arrival time is taken when the bytes arrive,
    before any parsing. Why not httpx: 200 httpx streams in one event loop cost ~100 µs of
    client CPU per message, so the last of 200 subscribers read an event ~20 ms after the
    first, and the benchmark measured its own client more than the API's fan-out."""

    SEQ = re.compile(rb'"bench-marker".*?"seq":\s*(-?\d+)')

    def __init__(self, request: bytes, received: dict[int, list[float]], opened: list[int],
                 all_open: asyncio.Event, expected: int) -> None:
        self.request, self.received, self.opened = request, received, opened
        self.all_open, self.expected = all_open, expected
        self.buf = b""
        self.started = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buf += data
        if not self.started and b"\r\n\r\n" in self.buf:
            self.started = True
            status = self.buf.split(b"\r\n", 1)[0]
            assert b" 200 " in status, status
            self.opened[0] += 1
            if self.opened[0] == self.expected:
                self.all_open.set()
        cut = max(self.buf.rfind(b"\n\n"), self.buf.rfind(b"\r\n\r\n"))  # after the last whole event
        if cut < 0:
            return
        for m in self.SEQ.finditer(self.buf, 0, cut):
            self.received.setdefault(int(m.group(1)), []).append(now)
        self.buf = self.buf[cut + 2:]


async def fanout(url: str, headers: dict[str, str], dsn: str, tenant: Any, api_pid: int) -> dict[str, float]:
    received: dict[int, list[float]] = {}
    opened = [0]
    all_open = asyncio.Event()
    host, port = httpx.URL(url).host, httpx.URL(url).port
    request = (f"GET /events/stream HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    loop = asyncio.get_running_loop()
    transports = []
    try:
        for _ in range(SUBSCRIBERS):
            transport, _ = await loop.create_connection(
                lambda: _SseSubscriber(request, received, opened, all_open, SUBSCRIBERS), host, port)
            transports.append(transport)
        await asyncio.wait_for(all_open.wait(), 60)
        sent: dict[int, float] = {}
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as c:
            req = await queue.enqueue(c, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="data",
                                      prompt="fanout")
            # seq -1: the first event after 200 streams opened meets their start-up work in the
            # API (each stream's own catch-up read); reported on its own, not in the p50/p99
            for seq in range(-1, FANOUT_EVENTS):
                if seq == 0:
                    cpu0 = cpu_seconds(api_pid)
                sent[seq] = time.perf_counter()
                await queue.append_events(c, req.id, req.org_id, [("bench-marker", {"seq": seq})])
                deadline = time.perf_counter() + 10
                while len(received.get(seq, [])) < SUBSCRIBERS and time.perf_counter() < deadline:
                    await asyncio.sleep(0.001)
        cpu1 = cpu_seconds(api_pid)
    finally:
        for t in transports:
            t.close()
    first = received.get(-1, [])
    delays = [t - sent[seq] for seq, times in received.items() if seq in sent and seq >= 0 for t in times]
    delivered = sum(len(v) for k, v in received.items() if k in sent and k >= 0)
    return {"fanout_p50_ms": pct(delays, 50) * 1000, "fanout_p99_ms": pct(delays, 99) * 1000,
            "fanout_first_event_last_ms": (max(first) - sent[-1]) * 1000 if len(first) == SUBSCRIBERS else None,
            "fanout_delivered": delivered, "fanout_expected": SUBSCRIBERS * FANOUT_EVENTS,
            "fanout_api_cpu_us_per_delivery": 1e6 * (cpu1 - cpu0) / max(1, delivered)}


def post_run(apis: list[ApiProcess], token: str, headers: dict[str, str], pg_pid: int) -> dict[str, Any]:
    """One POST load against these API processes, with the CPU time each side spent per POST."""
    generator = "wrk" if shutil.which("wrk") else "httpx"
    if generator == "wrk":  # warm-up, not measured: every pool connection opened, code paths loaded
        wrk_post_load(apis[0].url, token, seconds=2)
    api0, pg0 = sum(tree_cpu(a.pid) for a in apis), tree_cpu(pg_pid)
    out = wrk_post_load(apis[0].url, token) if generator == "wrk" else asyncio.run(post_load(apis[0].url, headers))
    api1, pg1 = sum(tree_cpu(a.pid) for a in apis), tree_cpu(pg_pid)
    n = max(1, out["post_requests"])
    return {**out, "post_api_cpu_ms": 1000 * (api1 - api0) / n, "post_pg_cpu_ms": 1000 * (pg1 - pg0) / n}


def run() -> dict[str, Any]:
    res: dict[str, Any] = {"posts": POSTS, "clients": CLIENTS, "rows": ROWS, "subscribers": SUBSCRIBERS}
    with tempfile.TemporaryDirectory(prefix="eve-bench-api-") as tmp_s, \
            bench_database(Path(tmp_s), max_connections="300") as (dsn, t):
        pg_pid = postmaster_pid(dsn)
        port, secret = free_port(), secrets.token_hex(32)

        def api_process(name: str, pool: int, **kw: Any) -> ApiProcess:
            env = {"EVE_LOG_LEVEL": "WARNING", "EVE_API_POOL_SIZE": str(pool)}
            return start_api(dsn, Path(tmp_s), env=env, name=name, port=port, jwt_secret=secret, **kw)

        # the pools together hold one connection per client: two processes with CLIENTS
        # each kept twice as many PostgreSQL backends busy as there were requests in
        # flight, and cost ~12% more CPU per POST on both sides (probe: 0.94-1.00k
        # against 1.11-1.12k req/s)
        apis = [api_process(f"api-{i}", CLIENTS // 2, args=("--reuse-port",)) for i in (1, 2)]
        try:
            for a in apis:
                a.wait_ready()
            token = httpx.post(f"{apis[0].url}/auth/token", json={"apiKey": t.api_key}).json()["token"]
            headers = {"Authorization": f"Bearer {token}"}
            generator = "wrk" if shutil.which("wrk") else "httpx"
            print(f"POST /requests load ({generator}"
                  f"{'' if generator == 'wrk' else '; install wrk for numbers the load generator does not cap'}), "
                  "two API processes…", flush=True)
            two = post_run(apis, token, headers, pg_pid)
            res.update({f"two_processes_{k}": v for k, v in two.items() if k.startswith("post_")})
            for a in apis:
                a.stop()
            api = api_process("api", CLIENTS)
            apis.append(api)
            api.wait_ready()
            print("POST /requests load, one API process…", flush=True)
            res.update(post_run([api], token, headers, pg_pid))
            print("SSE fan-out…", flush=True)
            res.update(asyncio.run(fanout(api.url, headers, dsn, t, api.pid)))
            print(f"reads with {ROWS:,} rows…", flush=True)
            res.update(asyncio.run(read_latency(api.url, headers, dsn, t)))
        finally:
            for a in apis:
                a.stop()
    print("| measure | value | target |\n|---|---|---|")
    for label, prefix in (("1 API process", ""), ("2 API processes", "two_processes_")):
        print(f"| POST /requests, {CLIENTS} connections ({res['load_generator']}), {label} | "
              f"{res[prefix + 'post_rps']:,.0f} req/s, p50 {res[prefix + 'post_p50_ms']:.1f} ms, "
              f"p99 {res[prefix + 'post_p99_ms']:.1f} ms, {res[prefix + 'post_connection_errors']} connection errors, "
              f"{res[prefix + 'post_non_2xx']} non-2xx | ≥ 1,000 req/s, p99 ≤ 100 ms, 0 errors |")
        print(f"| CPU per POST, {label} | API {res[prefix + 'post_api_cpu_ms']:.2f} ms, "
              f"PostgreSQL {res[prefix + 'post_pg_cpu_ms']:.2f} ms | |")
    for name in ("queue", "requests", "requests_failed", "requests_cancelled"):
        path = name.replace("_failed", "?status=failed").replace("_cancelled", "?status=cancelled (1 in 1,000)")
        print(f"| GET /{path} with {ROWS:,} rows | "
              f"p50 {res[f'get_{name}_p50_ms']:.1f} ms, p99 {res[f'get_{name}_p99_ms']:.1f} ms | ≤ 20 ms p50 |")
    print(f"| SSE fan-out to {SUBSCRIBERS} subscribers | p50 {res['fanout_p50_ms']:.1f} ms, p99 "
          f"{res['fanout_p99_ms']:.1f} ms ({res['fanout_delivered']}/{res['fanout_expected']} delivered), "
          f"API CPU {res['fanout_api_cpu_us_per_delivery']:.0f} µs per delivery | ≤ 100 ms p99 |")
    first = res["fanout_first_event_last_ms"]
    print(f"| SSE: the first event after {SUBSCRIBERS} streams opened, last delivery | "
          f"{f'{first:.1f} ms' if first is not None else 'not delivered to all'} | |")
    return res
