"""Typed async client for the eve HTTP API — the one the CLI and the TUI both use.

It exchanges an API key for a JWT (`POST /auth/token`), caches the token until shortly
before it expires, and on a 401 refreshes it once and retries. Errors come back as
`EveError`s a person can act on: `ApiUnreachable` names the URL and what to try,
`ApiError` carries the API's `{"error", "message"}` and the HTTP status.

The wire format is the API's: JSON in camelCase, timestamps ISO 8601 UTC. Methods
return the decoded JSON (dicts/lists) so `--json` output is exactly what the API said.
"""

from __future__ import annotations

import asyncio

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from eve.errors import AuthError, EveError, NotFound

TOKEN_REFRESH_MARGIN_S = 30.0


class ApiError(EveError):
    """The API answered with an error status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.http_status = status


class ApiUnreachable(EveError):
    code = "api_unreachable"
    http_status = 503


@dataclass(slots=True)
class SseEvent:
    """One server-sent event: `event:` name, `id:`, and `data:` decoded as JSON when it is JSON."""

    event: str
    id: str | None
    data: Any


def _reason(exc: httpx.TransportError) -> str:
    cause: BaseException | None = exc
    while cause is not None:  # httpx wraps the OS error; the chain says what really happened
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    text = str(exc).lower()
    if "name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return str(exc) or exc.__class__.__name__


class EveClient:
    """Talks to one eve API. Use as `async with EveClient(url, api_key=...) as c:`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._token = token
        self._token_expires = float("inf") if token else 0.0
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    async def __aenter__(self) -> EveClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- auth ---------------------------------------------------------------------

    async def authenticate(self) -> str:
        """Exchange the API key for a JWT (cached until shortly before expiry)."""
        if not self.api_key:
            raise AuthError("no API key configured: run `eve config set api-key KEY` or set EVE_API_KEY")
        data = await self._send("POST", "/auth/token", json={"apiKey": self.api_key}, auth=False)
        self._token = data["token"]
        self._token_expires = _parse_expiry(data.get("expiresAt"))
        return self._token  # type: ignore[return-value]

    async def _auth_header(self) -> dict[str, str]:
        if self._token is None or time.time() > self._token_expires - TOKEN_REFRESH_MARGIN_S:
            await self.authenticate()
        return {"Authorization": f"Bearer {self._token}"}

    # -- transport -------------------------------------------------------------------

    async def _send(self, method: str, path: str, *, auth: bool = True, **kw: Any) -> Any:
        extra = dict(kw.pop("headers", {}) or {})
        for attempt in (1, 2):
            headers = dict(extra)
            if auth:
                headers.update(await self._auth_header())
            try:
                resp = await self._http.request(method, path, headers=headers, **kw)
            except httpx.TransportError as exc:
                raise ApiUnreachable(
                    f"cannot reach API at {self.base_url} ({_reason(exc)}) — is it running? try: eve status / eve up"
                ) from exc
            if resp.status_code == 401 and auth and attempt == 1 and self.api_key:
                self._token = None  # expired or rotated secret: mint a new token once
                continue
            return _decode(resp)
        raise AssertionError("unreachable")

    async def _stream(self, path: str, params: dict[str, Any], last_event_id: str | None,
                      on_open: Callable[[], None] | None = None) -> AsyncIterator[SseEvent]:
        headers = {"Accept": "text/event-stream", **(await self._auth_header())}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        try:
            async with self._http.stream("GET", path, params=params, headers=headers,
                                         timeout=httpx.Timeout(30.0, read=None)) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    _decode(resp)
                if on_open is not None:
                    on_open()  # the server has subscribed us: everything from now on will arrive
                async for ev in parse_sse(resp.aiter_lines()):
                    yield ev
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"stream from {self.base_url}{path} broke ({_reason(exc)})") from exc

    # -- requests -------------------------------------------------------------------------

    async def create_request(
        self,
        worker_type: str,
        prompt: str,
        *,
        context: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        priority: int | None = None,
        parent_id: str | None = None,
        reply_to_parent: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """POST /requests. With `idempotency_key` a lost answer is safe to retry, and this
        method retries it itself (three tries, on transport errors only): the API returns
        the first request again instead of making a second."""
        body: dict[str, Any] = {"workerType": worker_type, "prompt": prompt}
        if parent_id is not None:
            body["parentId"] = parent_id
        if reply_to_parent:
            body["replyToParent"] = True
        if context is not None:
            body["context"] = context
        if config:
            body["config"] = config
        if priority is not None:
            body["priority"] = priority
        if idempotency_key is None:
            return await self._send("POST", "/requests", json=body)
        for attempt in range(3):
            try:
                return await self._send("POST", "/requests", json=body,
                                        headers={"Idempotency-Key": idempotency_key})
            except ApiUnreachable:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    async def list_requests(
        self,
        *,
        status: str | None = None,
        worker_type: str | None = None,
        org: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        q: str | None = None,
        since: str | None = None,
        until: str | None = None,
        sort: str | None = None,
    ) -> dict[str, Any]:
        """`{"items": [...], "nextCursor": str | None, "total": int, "totalCapped": bool}`, newest first (or `sort="oldest"`).

        A search: `status` may list several (comma-separated), `q` is text in the prompt or the
        start of an id, `since`/`until` are ISO 8601 creation times.
        """
        params = _params(status=status, workerType=worker_type, org=org, limit=limit, cursor=cursor, q=q,
                         since=since, until=until, sort=sort)
        return await self._send("GET", "/requests", params=params)

    async def children(self, request_id: str) -> list[dict[str, Any]]:
        """Direct children with status and result summary (GET /requests/{id}/children)."""
        return await self._send("GET", f"/requests/{request_id}/children")

    async def tree(self, request_id: str) -> dict[str, Any]:
        """`{"id", "ancestors": [ids], "descendants": [nodes with depth]}`."""
        return await self._send("GET", f"/requests/{request_id}/tree")

    async def wait_for_children(self, request_id: str) -> dict[str, Any]:
        """Ask the API to park this running request when its agent exits (`eve wait`)."""
        return await self._send("POST", f"/requests/{request_id}/wait")

    async def get_request(self, request_id: str) -> dict[str, Any]:
        return await self._send("GET", f"/requests/{request_id}")

    async def get_result(self, request_id: str) -> dict[str, Any] | None:
        """The result, or None while there is none yet (the API answers 404 until then)."""
        try:
            return await self._send("GET", f"/results/{request_id}")
        except ApiError as exc:
            if exc.status == 404:
                # tell "no result yet" from "no such request"
                await self.get_request(request_id)
                return None
            raise

    async def list_events(self, request_id: str, *, after: int = 0) -> list[dict[str, Any]]:
        return await self._send("GET", f"/requests/{request_id}/events", params={"after": after})

    async def stream_events(self, request_id: str, *, after: int = 0) -> AsyncIterator[SseEvent]:
        """Past events, then live ones, until the API sends `event: end`."""
        async for ev in self._stream(f"/requests/{request_id}/events", {"after": after},
                                     str(after) if after else None):
            yield ev
            if ev.event == "end":
                return

    async def firehose(
        self, *, worker_type: str | None = None, org: str | None = None, last_event_id: str | None = None,
        on_open: Callable[[], None] | None = None,
    ) -> AsyncIterator[SseEvent]:
        """Every event the caller may see, from now (or after `last_event_id`) on, until closed."""
        async for ev in self._stream("/events/stream", _params(workerType=worker_type, org=org), last_event_id,
                                     on_open):
            yield ev

    async def cancel(self, request_id: str) -> dict[str, Any]:
        return await self._send("POST", f"/requests/{request_id}/cancel")

    async def replay(self, request_id: str, *, prompt: str | None = None) -> dict[str, Any]:
        """A new request like this one; with `prompt`, the new one runs the edited prompt."""
        if prompt is not None:
            return await self._send("POST", f"/requests/{request_id}/replay", json={"prompt": prompt})
        return await self._send("POST", f"/requests/{request_id}/replay")

    # -- schedules -----------------------------------------------------------------------------

    async def create_schedule(
        self,
        name: str,
        cron_expression: str,
        worker_type: str,
        prompt: str,
        *,
        timezone: str = "UTC",
        context: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        priority: int | None = None,
        overlap: str | None = None,
        max_delay_s: int | None = None,
        enabled: bool = True,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "cronExpression": cron_expression, "workerType": worker_type,
                                "prompt": prompt, "timezone": timezone, "enabled": enabled}
        body.update(_params(context=context, config=config or None, priority=priority, overlap=overlap,
                            maxDelayS=max_delay_s))
        return await self._send("POST", "/schedules", json=body)

    async def list_schedules(self, *, org: str | None = None) -> list[dict[str, Any]]:
        return (await self._send("GET", "/schedules", params=_params(org=org)))["items"]

    async def get_schedule(self, schedule: str) -> dict[str, Any]:
        """By id or by name (within the caller's org); includes nextFireTimes and recent fires."""
        return await self._send("GET", f"/schedules/{schedule}")

    async def update_schedule(self, schedule: str, **changes: Any) -> dict[str, Any]:
        """PATCH with wire names (`enabled=False` pauses, `cronExpression=...`)."""
        return await self._send("PATCH", f"/schedules/{schedule}", json=changes)

    async def pause_schedule(self, schedule: str) -> dict[str, Any]:
        return await self.update_schedule(schedule, enabled=False)

    async def resume_schedule(self, schedule: str) -> dict[str, Any]:
        return await self.update_schedule(schedule, enabled=True)

    async def delete_schedule(self, schedule: str) -> None:
        await self._send("DELETE", f"/schedules/{schedule}")

    async def run_schedule(self, schedule: str) -> dict[str, Any]:
        """Fire now; returns the created request."""
        return await self._send("POST", f"/schedules/{schedule}/run")

    # -- questions (human in the loop) ---------------------------------------------------------

    async def ask(self, question: str, *, options: list[str] | None = None,
                  timeout_s: float | None = None) -> dict[str, Any]:
        """An agent asks (authenticated with its request token); its request waits for the answer."""
        return await self._send("POST", "/hitl", json={"question": question, "options": options or [],
                                                        **_params(timeoutS=timeout_s)})

    async def list_questions(self, *, status: str | None = None, org: str | None = None,
                             request_id: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """`{"items": [...], "total": n}`; pending ones oldest first."""
        return await self._send("GET", "/hitl", params=_params(status=status, org=org, requestId=request_id,
                                                               limit=limit))

    async def get_question(self, question_id: str) -> dict[str, Any]:
        return await self._send("GET", f"/hitl/{question_id}")

    async def answer_question(self, question_id: str, answer: str) -> dict[str, Any]:
        return await self._send("POST", f"/hitl/{question_id}/answer", json={"answer": answer})

    # -- platform ------------------------------------------------------------------------------

    async def queue(self) -> list[dict[str, Any]]:
        return await self._send("GET", "/queue")

    async def workers(self) -> list[dict[str, Any]]:
        return await self._send("GET", "/workers")

    async def worker_logs(self, worker_id: str, *, after: int = 0) -> list[dict[str, Any]]:
        return await self._send("GET", f"/workers/{worker_id}/logs", params={"after": after})

    async def drain_worker(self, worker_id: str) -> dict[str, Any]:
        """Ask a worker to stop claiming and exit once its requests are done (operators only)."""
        return await self._send("POST", f"/workers/{worker_id}/drain")

    async def stats(self, *, window: str = "1h", worker_type: str | None = None,
                    org: str | None = None) -> dict[str, Any]:
        """What finished in the window: totals, per worker type and per org."""
        return await self._send("GET", "/stats", params=_params(window=window, workerType=worker_type, org=org))

    async def worker_types(self) -> list[dict[str, Any]]:
        return await self._send("GET", "/worker-types")

    async def status(self) -> dict[str, Any]:
        return await self._send("GET", "/status")

    async def orgs(self) -> list[dict[str, Any]]:
        """Per-org pending, running and this month's spend (GET /orgs; operators: every org)."""
        return await self._send("GET", "/orgs")

    async def health(self, *, ready: bool = False) -> dict[str, Any]:
        return await self._send("GET", "/health", params={"ready": 1} if ready else None, auth=False)


def _params(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


def _parse_expiry(value: Any) -> float:
    if not value:
        return time.time() + 300
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() + 300


def _decode(resp: httpx.Response) -> Any:
    if resp.status_code < 400:
        if not resp.content:
            return None
        return resp.json()
    try:
        body = resp.json()
        code = str(body.get("error") or "http_error")
        message = str(body.get("message") or body.get("detail") or resp.reason_phrase)
    except (ValueError, AttributeError):
        code, message = "http_error", f"HTTP {resp.status_code} {resp.reason_phrase}"
    if resp.status_code == 401:
        raise ApiError(401, code, f"{message} — check the API key: eve config set api-key KEY (or EVE_API_KEY)")
    if resp.status_code == 404:
        err = ApiError(404, code or "not_found", message)
        raise err
    raise ApiError(resp.status_code, code, message)


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[SseEvent]:
    """Minimal text/event-stream parser (comments skipped, multi-line data joined)."""
    event, ev_id, data = "message", None, []
    async for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    payload: Any = json.loads(text)
                except ValueError:
                    payload = text
                yield SseEvent(event=event, id=ev_id, data=payload)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            ev_id = value


__all__ = ["ApiError", "ApiUnreachable", "EveClient", "NotFound", "SseEvent", "parse_sse"]
