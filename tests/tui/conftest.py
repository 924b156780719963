"""Fixtures for the console tests: a fake client with fixed data and a fixed clock."""

from __future__ import annotations

import pytest

from eve.tui.app import EveApp
from tests.tui.fakes import NOW, FakeClient, default_requests, make_events


def make_app(client: FakeClient | None = None, **kw: object) -> EveApp:
    kw.setdefault("live", False)
    return EveApp(client or FakeClient(), clock=lambda: NOW, **kw)  # type: ignore[arg-type]


@pytest.fixture
def client() -> FakeClient:
    return FakeClient(firehose_events=make_events(default_requests()[0]["id"]))
