"""What an idle console costs and how soon it shows data (issue #18's idle-CPU and first-paint items).

The numbers are measured by `make bench` (tests/bench/bench_tui.py); these tests pin the
mechanisms behind them, each of which failed before: fixed-width columns are not re-measured
on every refresh, the workers panel renders only the rows it can show, and the first
refresh takes the answers `eve ui` fetched while Textual was starting.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from textual.widgets import Static

from eve.tui.app import EveApp
from eve.tui.prefetch import first_fetch
from tests.tui.fakes import NOW, FakeClient, make_request
from tests.tui.test_pilot import refreshed, started, table, text_of, until


def _workers(n: int) -> list[dict[str, Any]]:
    return [{"id": f"worker-{i:02d}", "workerType": "general", "hostname": "h", "pid": i, "version": "0.1.0",
             "state": "idle", "currentRequestId": None, "slots": 2, "slotsBusy": 0, "startedAt": "2026-01-01T00:00:00Z",
             "heartbeatAt": "2026-01-01T00:00:00Z", "heartbeatAgeS": 2.0 + i, "sandbox": "bwrap", "diskLow": False}
            for i in range(n)]


async def test_a_refresh_does_not_remeasure_fixed_width_columns():
    now = [NOW]
    client = FakeClient(requests=[make_request(i, "completed") for i in range(100)])
    app = EveApp(client, clock=lambda: now[0], live=False)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, 100)
        t = table(app)
        measured: list[Any] = []
        original = t._update_column_widths
        t._update_column_widths = lambda cells: (measured.extend(cells), original(cells))  # type: ignore[method-assign]
        ages = [str(t.get_cell_at((i, 0 + list(t.columns).index("age")))) for i in range(3)]
        now[0] = NOW + timedelta(minutes=7)  # every age changes
        await refreshed(pilot, app)
        await pilot.pause()
        assert [str(t.get_cell_at((i, list(t.columns).index("age")))) for i in range(3)] != ages
        fixed = [c for c in measured if not t.columns[c.column_key].auto_width]
        assert not fixed, f"{len(fixed)} cells of fixed-width columns were measured on refresh"


async def test_the_workers_panel_renders_only_the_rows_it_shows():
    client = FakeClient()
    client.worker_rows = _workers(50)
    app = EveApp(client, clock=lambda: NOW, live=False)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await refreshed(pilot, app)
        panel = app.screen.query_one("#workers", Static)
        await until(pilot, lambda: panel.content.row_count == panel.size.height - 1, "the panel to fit its rows")
        assert 0 < panel.content.row_count < 50
        assert "worker-00" in text_of(panel)
        assert "50 idle" in text_of(app.screen.query_one("#workers-title", Static))  # the title counts them all


async def test_the_first_refresh_takes_the_prefetched_answers():
    client = FakeClient()
    client.authenticate = _token  # type: ignore[attr-defined]
    first = asyncio.ensure_future(first_fetch(client))
    await first
    asked = len(client.calls)
    app = EveApp(client, clock=lambda: NOW, live=False, first_fetch=first)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        assert len(client.calls) == asked, client.calls[asked:]  # nothing asked twice for the first screen
        assert {name for name, _ in client.calls} == {"queue", "workers", "list_requests", "stats"}
        assert app.connection == "live" and app.snapshot.stats is not None


async def _token() -> str:
    return "token"


async def test_a_capped_total_reads_as_at_least():
    client = FakeClient()
    search = client.list_requests

    async def capped(**kw: Any) -> dict[str, Any]:
        return {**await search(**kw), "total": 10_000, "totalCapped": True}

    client.list_requests = capped  # type: ignore[method-assign]
    app = EveApp(client, clock=lambda: NOW, live=False)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        title = app.screen.query_one("#requests-title", Static)
        await until(pilot, lambda: "of 10,000+" in text_of(title), "the title to say at least 10,000")
