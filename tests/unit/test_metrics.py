"""Who sees which metrics (eve/metrics.py): the public view drops cost and tenant labels."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from eve import metrics
from eve.errors import AuthError, ConfigError

TOKEN = "s" * 32


def _registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    Counter("eve_cost_usd_total", "cost", ["org", "worker_type"], registry=reg).labels("org-1", "general").inc(2)
    Gauge("tenant_thing", "anything labelled with an org", ["org"], registry=reg).labels("org-2").set(1)
    mixed = Gauge("mixed", "some samples with an org, some without", ["org", "kind"], registry=reg)
    mixed.labels("org-3", "a").set(1)
    mixed.labels("", "b").set(2)  # an empty org label is still a tenant label: dropped
    Counter("eve_requests_total", "requests", ["worker_type", "status"], registry=reg).labels("general", "ok").inc()
    return reg


def test_the_public_view_has_no_cost_family_and_no_sample_with_an_org_label():
    public = metrics.exposition(False, _registry()).decode()
    assert "eve_cost_usd" not in public and "tenant_thing" not in public and "org" not in public
    assert 'eve_requests_total{status="ok",worker_type="general"} 1.0' in public
    full = metrics.exposition(True, _registry()).decode()
    assert 'org="org-1"' in full and 'org="org-3"' in full and "eve_cost_usd_total" in full


def test_every_cost_family_of_eve_is_private():
    names = {f.name for f in metrics.COST.collect()}
    assert names <= metrics.PRIVATE_FAMILIES


@pytest.mark.parametrize(("header", "token", "full"), [
    (None, TOKEN, False), (None, None, False), (f"Bearer {TOKEN}", TOKEN, True), (f"bearer  {TOKEN} ", TOKEN, True),
])
def test_access_is_full_only_with_the_token(header, token, full):
    assert metrics.full_access(header, token) is full


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer wrong", TOKEN), (f"Basic {TOKEN}", TOKEN), (f"Bearer {TOKEN}", None), ("Bearer ", TOKEN),
])
def test_any_other_credential_is_refused_not_downgraded(header, token):
    with pytest.raises(AuthError, match="EVE_METRICS_TOKEN"):
        metrics.full_access(header, token)


def test_a_short_token_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("EVE_METRICS_TOKEN", "short")
    with pytest.raises(ConfigError, match="at least 16"):
        metrics.metrics_token()
    monkeypatch.setenv("EVE_METRICS_TOKEN", "")
    assert metrics.metrics_token() is None
