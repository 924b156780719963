"""The queue panel's per-org rows (#19): pending, running, this month's spend against the budget."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from eve.tui.screens.dashboard import DashboardScreen, org_usage_table
from tests.tui.conftest import make_app
from tests.tui.fakes import FakeClient
from tests.tui.test_pilot import until

ORGS = [{"slug": "acme", "pending": 7, "running": 2, "monthSpendUsd": 12.5, "monthlyBudgetUsd": 10.0},
        {"slug": "globex", "pending": 0, "running": 1, "monthSpendUsd": 0.25, "monthlyBudgetUsd": None}]


class OrgsClient(FakeClient):
    async def orgs(self) -> list[dict[str, Any]]:
        return ORGS


def _text(app: Any) -> str:
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(app.screen.query_one("#queue", Static).content)
    return console.export_text()


async def test_queue_panel_shows_each_orgs_pending_running_and_spend():
    app = make_app(OrgsClient())
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.fetch_count >= 1
                    and "acme" in _text(app), "the per-org rows")
        text = _text(app)
        acme = next(line for line in text.splitlines() if line.strip().startswith("acme"))
        assert acme.split()[1:] == ["7", "2", "$12.50/10"]
        assert "globex" in text and "$0.25" in text


def test_one_org_without_a_budget_shows_no_org_rows():
    assert org_usage_table(ORGS[1:]) is None
    assert org_usage_table(ORGS[:1]) is not None  # a budget is worth showing even for one org
