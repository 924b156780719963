"""Perf tripwire: eve's queue against pgqueuer in the same run, as pgqueuer's CI does.

Not a timer: absolute numbers on a shared machine mean nothing, so eve drains a few
thousand no-op jobs through the worker's path (claims of 10, ResultWriter group
finish, results and events kept) and pgqueuer drains as many, on one PostgreSQL with
durable settings (like `make bench`), interleaved, best of three each. It fails only
when eve falls below 0.4x pgqueuer — a large regression (a lost index, a NOTIFY
per row, a finish per job), not noise. On the quiet 2-core box eve drained 0.73-0.75x
pgqueuer before fair claims and the waiting/HITL result triggers, and 0.55-0.66x after
(1 December 2026; best of three, with pgqueuer itself varying 4.7k-6.2k jobs/s between
runs): a 0.5 floor failed on noise alone, so the floor is 0.4. With the claim's plan
reused and one guarded result trigger (2 December 2026): 0.59-0.74x.
The full comparison is `make bench` (tests/bench/bench_queue.py).
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.bench import bench_queue
from tests.bench._stack import embedded_postgres

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("pgqueuer") is None or importlib.util.find_spec("asyncpg") is None,
                       reason="pgqueuer/asyncpg missing: install the dev extras (pip install -e '.[dev]')"),
]

JOBS = 2000
ROUNDS = 3
FLOOR = 0.4


@pytest.fixture(scope="module")
def durable_pg(tmp_path_factory):
    """Its own PostgreSQL with default (durable) settings, as `make bench` uses: the test
    cluster runs with fsync off, which weighs CPU over commits and is not what we compare."""
    with embedded_postgres(tmp_path_factory.mktemp("tripwire"), max_connections="100") as admin:
        yield admin


async def test_eve_drains_at_least_half_as_fast_as_pgqueuer(durable_pg):
    admin = durable_pg
    dsn, tenant = await bench_queue.eve_setup(admin, "tripwire_eve")
    eve, peer = [], []
    for i in range(ROUNDS):  # interleaved, so a busy moment on the machine hits both
        eve.append(await bench_queue.eve_throughput(dsn, tenant, 10, jobs=JOBS))
        tp, _ = await bench_queue.pgqueuer_throughput(admin, jobs=JOBS, db=f"tripwire_pgqueuer_{i}")
        peer.append(tp)
    ratio = max(eve) / max(peer)
    print(f"eve {max(eve):,.0f} jobs/s, pgqueuer {max(peer):,.0f} jobs/s: {ratio:.2f}x")
    assert ratio >= FLOOR, (f"eve drained {max(eve):,.0f} jobs/s, pgqueuer {max(peer):,.0f} (best of {ROUNDS}): "
                            f"{ratio:.2f}x < {FLOOR}x; run `make bench` and look for what got slower")
