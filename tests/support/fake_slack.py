"""A fake Slack Web API for tests (EVE_SLACK_API_URL points at it), and signed inbound requests.

Records every chat.postMessage / chat.update / chat.postEphemeral / views.open it accepted (and the
ones it refused), answers users.info from a table of users with verified emails, and can
be told to refuse the next calls of a method with a status (429 with Retry-After, 500).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    status: int


@dataclass
class FakeSlack:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, list[tuple[int, int | None, str | None]]] = field(default_factory=dict)
    _ts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    socket_url: str | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    def add_user(self, slack_id: str, email: str, *, verified: bool = True) -> None:
        self.users[slack_id] = {"email": email, "verified": verified}

    def fail_next(self, method: str, status: int = 429, *, retry_after: int | None = 1, times: int = 1,
                  error: str | None = None) -> None:
        """The next `times` calls of `method` fail: HTTP `status`, or (`error`) Slack's own
        refusal as it sends it, HTTP 200 with {"ok": false, "error": error}."""
        with self._lock:
            self.failures.setdefault(method, []).extend([(status, retry_after, error)] * times)

    def accepted(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c.args for c in self.calls if c.method == method and c.status == 200]

    def refused(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c.args for c in self.calls if c.method == method and c.status != 200]

    def handle(self, method: str, args: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            queued = self.failures.get(method) or []
            if queued:
                status, retry_after, error = queued.pop(0)
                # a refusal in the body is recorded as a refused call (status 0: not the 200 it came with)
                self.calls.append(Call(method, args, status if error is None else 0))
                headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                if error is not None:
                    return 200, headers, {"ok": False, "error": error}
                return status, headers, {"ok": False, "error": "ratelimited" if status == 429 else "fatal_error"}
            self._ts += 1
            ts = f"{int(time.time())}.{self._ts:06d}"
            if method == "chat.postMessage":
                args = {**args, "_ts": ts}  # the ts this message got, for the tests
            self.calls.append(Call(method, args, 200))
        if method == "chat.postMessage":
            return 200, {}, {"ok": True, "channel": args.get("channel"), "ts": ts,
                             "message": {"text": args.get("text")}}
        if method == "chat.update":
            return 200, {}, {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}
        if method == "chat.postEphemeral":
            return 200, {}, {"ok": True, "message_ts": ts}
        if method == "users.info":
            user = self.users.get(str(args.get("user")))
            if user is None:
                return 200, {}, {"ok": False, "error": "user_not_found"}
            return 200, {}, {"ok": True, "user": {"id": args["user"], "deleted": False, "is_bot": False,
                                                  "is_email_confirmed": user["verified"],
                                                  "profile": {"email": user["email"]}}}
        if method == "apps.connections.open":
            if self.socket_url is None:
                return 200, {}, {"ok": False, "error": "not_allowed"}
            return 200, {}, {"ok": True, "url": self.socket_url}
        if method == "views.open":
            return 200, {}, {"ok": True, "view": {"id": f"V{self._ts:06d}"}}
        if method == "auth.test":
            return 200, {}, {"ok": True, "team_id": "T0TEST", "user_id": "UBOT"}
        return 200, {}, {"ok": False, "error": "unknown_method"}

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parsed = urllib.parse.urlparse(self.path)
                method = parsed.path.rsplit("/", 1)[-1]
                args: dict[str, Any] = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                if raw:
                    if "json" in (self.headers.get("content-type") or ""):
                        args.update(json.loads(raw))
                    else:
                        args.update({k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()})
                status, headers, body = fake.handle(method, args)
                out = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(out)

            do_GET = _serve
            do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def sign(secret: str, body: bytes, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    base = b"v0:" + str(ts).encode() + b":" + body
    sig = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sig}


def slash_command(api_url: str, secret: str, *, team: str, user: str, text: str, channel: str = "C0CHAN",
                  trigger_id: str = "t.1", ts: int | None = None, signature_secret: str | None = None
                  ) -> httpx.Response:
    """POST a signed `/eve TEXT` to the API's /slack/events, as Slack does (form-encoded)."""
    body = urllib.parse.urlencode({
        "token": "legacy", "team_id": team, "team_domain": "test", "channel_id": channel, "channel_name": "general",
        "user_id": user, "user_name": "someone", "command": "/eve", "text": text, "api_app_id": "A0APP",
        "response_url": "https://hooks.slack.invalid/x", "trigger_id": trigger_id}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               **sign(signature_secret or secret, body, ts)}
    return httpx.post(f"{api_url}/slack/events", content=body, headers=headers, timeout=30)


def interaction(api_url: str, secret: str, payload: dict[str, Any]) -> httpx.Response:
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    return httpx.post(f"{api_url}/slack/events", content=body, timeout=30,
                      headers={"Content-Type": "application/x-www-form-urlencoded", **sign(secret, body)})


def mention_event(*, team: str, user: str, text: str, event_id: str, thread_ts: str | None,
                  channel: str = "C0CHAN", ts: str | None = None) -> dict[str, Any]:
    """The Events API body of an `app_mention` (a reply in `thread_ts` when given)."""
    event = {"type": "app_mention", "user": user, "text": text, "channel": channel, "team": team,
             "ts": ts or f"{time.time():.6f}", "event_ts": ts or f"{time.time():.6f}"}
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return {"token": "legacy", "team_id": team, "api_app_id": "A0APP", "type": "event_callback",
            "event_id": event_id, "event_time": int(time.time()), "event": event,
            "authorizations": [{"team_id": team, "user_id": "UBOT", "is_bot": True}]}


def app_mention(api_url: str, secret: str, **kw: Any) -> httpx.Response:
    """POST a signed `app_mention` event (JSON) to the API's /slack/events, as Slack does."""
    body = json.dumps(mention_event(**kw)).encode()
    return httpx.post(f"{api_url}/slack/events", content=body, timeout=30,
                      headers={"Content-Type": "application/json", **sign(secret, body)})


class FakeSocketMode:
    """Slack's Socket Mode end: a websocket (aiohttp, in its own thread) that apps.connections.open
    on the fake Web API points at. The test sends envelopes and waits for the app's acks."""

    def __init__(self) -> None:
        import asyncio
        import queue as queue_mod

        self.acks: queue_mod.Queue[dict[str, Any]] = queue_mod.Queue()
        self.connected = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._sockets: list[Any] = []
        self._ready = threading.Event()
        self.port = 0
        threading.Thread(target=self._run, daemon=True).start()
        if not self._ready.wait(10):
            raise RuntimeError("fake Socket Mode server did not start")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link"

    def _run(self) -> None:
        from aiohttp import WSMsgType, web

        async def link(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            self._sockets.append(ws)
            await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0APP"}})
            self.connected.set()
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.acks.put(json.loads(msg.data))
            return ws

        async def start() -> None:
            app = web.Application()
            app.router.add_get("/link", link)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def send(self, envelope: dict[str, Any]) -> None:
        import asyncio

        async def go() -> None:
            for ws in list(self._sockets):
                if not ws.closed:
                    await ws.send_json(envelope)
        asyncio.run_coroutine_threadsafe(go(), self._loop).result(10)

    def ack_for(self, envelope_id: str, timeout: float) -> dict[str, Any]:
        import queue as queue_mod

        deadline = time.monotonic() + timeout
        while True:
            try:
                ack = self.acks.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue_mod.Empty:
                raise AssertionError(f"no ack for envelope {envelope_id} within {timeout}s") from None
            if ack.get("envelope_id") == envelope_id:
                return ack

    def stop(self) -> None:
        import asyncio

        async def go() -> None:
            for ws in list(self._sockets):
                await ws.close()
            await self._runner.cleanup()
        asyncio.run_coroutine_threadsafe(go(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
