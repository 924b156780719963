"""Prometheus metric definitions shared by the worker and the API (DESIGN §7), and who may
scrape which of them.

`/metrics` (the API's and each worker's health port) answers without a login, because
scrapers and probes have none. What an unauthenticated scrape gets is the public view:
every family except the private ones (cost), and no sample that carries a tenant label
(`org`). A scrape that sends `Authorization: Bearer $EVE_METRICS_TOKEN` gets everything; one
that sends any other credential is refused (401), so a Prometheus with a stale token shows
up as a failing target instead of silently losing the cost series.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from eve.errors import AuthError, ConfigError

REQUESTS = Counter("eve_requests_total", "Requests finished, by worker type and result status",
                   ["worker_type", "status"])
DURATION = Histogram("eve_request_duration_seconds", "Time from spawn to result", ["worker_type"],
                     buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600))
QUEUE_DEPTH = Gauge("eve_queue_depth", "Pending requests by worker type", ["worker_type"])
TOKENS = Counter("eve_tokens_total", "Tokens used by agents", ["direction"])
COST = Counter("eve_cost_usd_total", "Agent cost in USD", ["org", "worker_type"])
CLAIMS = Counter("eve_worker_claims_total", "Claim attempts by result (claimed, empty, error)", ["result"])
SLOTS_BUSY = Gauge("eve_worker_slots_busy", "Slots of this worker running a request")
EGRESS = Counter("eve_agent_egress_total", "Agents' connections through the egress proxy, by outcome "
                 "(allowed, refused: not on the allowlist)", ["outcome"])
LIMITS = Counter("eve_agent_limit_total", "Agents stopped by a per-agent limit (memory, disk, time, idle), "
                 "by worker type", ["worker_type", "limit"])

METRICS_TOKEN_ENV = "EVE_METRICS_TOKEN"
MIN_TOKEN_CHARS = 16
# Families only an authenticated scrape sees, and labels that name a tenant: a sample with one
# of them is left out of the public view, whatever its family.
PRIVATE_FAMILIES = frozenset({"eve_cost_usd"})
TENANT_LABELS = frozenset({"org"})


def metrics_token() -> str | None:
    """EVE_METRICS_TOKEN, or None when unset (then every scrape gets the public view). A short
    token is refused at start-up: it guards tenants' ids and spend."""
    token = os.environ.get(METRICS_TOKEN_ENV, "").strip()
    if not token:
        return None
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{METRICS_TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} characters "
                          "(e.g. `openssl rand -hex 32`)")
    return token


def full_access(authorization: str | None, token: str | None) -> bool:
    """Whether a scrape sees everything (True) or the public view (False). No Authorization
    header: the public view. The right bearer token: everything. Anything else, including a
    token sent to a process that has none configured: AuthError (401), never a quiet downgrade."""
    if not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if token is not None and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                               token.encode()):
        return True
    raise AuthError(f"/metrics: not the metrics token; send `Authorization: Bearer ${METRICS_TOKEN_ENV}`, or no "
                    "Authorization header for the public view (no org ids, no cost)"
                    + ("" if token else f"; {METRICS_TOKEN_ENV} is not set on this process"))


class PublicView(Collector):
    """`registry` without its private families and without samples labelled with a tenant.
    Filtering collected families (not the text) keeps the exposition well-formed: a family
    whose every sample was dropped is left out entirely."""

    def __init__(self, registry: Collector) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            if family.name in PRIVATE_FAMILIES:
                continue
            samples = [s for s in family.samples if TENANT_LABELS.isdisjoint(s.labels)]
            if family.samples and not samples:
                continue
            public = Metric(family.name, family.documentation, family.type, family.unit)
            public.samples = samples
            yield public


def exposition(full: bool, registry: Collector = REGISTRY) -> bytes:
    """The Prometheus text for a scrape: everything, or the public view."""
    return generate_latest(registry if full else PublicView(registry))  # type: ignore[arg-type]
