"""Prometheus metric definitions shared by the worker and the API (DESIGN §7)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
