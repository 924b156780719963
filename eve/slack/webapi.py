"""Slack Web API clients: one place that knows the base URL (EVE_SLACK_API_URL for tests)."""

from __future__ import annotations

import os

from slack_sdk.web.async_client import AsyncWebClient

DEFAULT_API_URL = "https://slack.com/api/"


def api_url() -> str:
    url = os.environ.get("EVE_SLACK_API_URL") or DEFAULT_API_URL
    return url if url.endswith("/") else url + "/"


def client(token: str | None = None, *, timeout: int = 10) -> AsyncWebClient:
    """A client with no retry handlers of its own: a retried chat.postMessage whose first try
    reached Slack would post twice, so retries are the delivery loop's decision."""
    return AsyncWebClient(token=token, base_url=api_url(), timeout=timeout, retry_handlers=[])
