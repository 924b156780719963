"""A scripted fake of the Anthropic Messages API, for running the real Claude Code CLI offline.

Claude Code is pointed at it with ANTHROPIC_BASE_URL. It answers `POST /v1/messages`
(streaming SSE and plain JSON) and `POST /v1/messages/count_tokens`; anything else gets
a small JSON 200 so side requests never hang. Behaviour comes from the conversation:

* `Echo "X" using the Bash tool` (the seed's smoke prompt) or `[[bash: CMD]]` → a
  `Bash` tool_use; once the tool result is back, a final text quoting its output —
  or, when Claude Code marks the result `is_error` (the tool failed or permission was
  denied), a text saying so with `[tool error]`, never "Done".
* `[[read: PATH]]` → a `Read` tool_use, then a final text quoting the file.
* `[[api_error]]` / `[[api_error: 400]]` → an HTTP error in Anthropic's error shape.
* `[[hang]]` → the request is accepted and never answered (until `stop()`).
* `[[text: SOME TEXT]]` → that text. Anything else → a short text echoing the prompt.
* `[[slow: 0.5]]` → waits that many seconds between streamed chunks.

Requests that carry no tools (title generation, summaries, quota probes) are side
requests: they get a short text whatever the prompt says. Tests can add rules with
`add_rule(fn)`: `fn(body) -> dict | None` returning a response spec
(`{"text": ...}`, `{"tool": name, "input": {...}}` or `{"error": status}`).

Stdlib only; `python tests/e2e/fake_anthropic.py --port 8787` runs it by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Rule = Callable[[dict[str, Any]], dict[str, Any] | None]

TOOL_FAILED_MARK = "[tool error]"
USAGE = {"input_tokens": 120, "output_tokens": 30, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 40}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") == "tool_result":
            parts.append(_text_of(block.get("content")))
    return "\n".join(parts)


def first_user_text(body: dict[str, Any]) -> str:
    """The user's prompt: the first user message's text, minus Claude Code's reminders."""
    for msg in body.get("messages", []):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):
                texts = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
                texts = [t for t in texts if not t.lstrip().startswith("<system-reminder>")]
                return "\n".join(texts) if texts else _text_of(content)
            return _text_of(content)
    return ""


def _last_tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    msgs = body.get("messages", [])
    if not msgs or msgs[-1].get("role") != "user":
        return []
    content = msgs[-1].get("content")
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def last_tool_result(body: dict[str, Any]) -> str | None:
    results = _last_tool_results(body)
    if not results:
        return None
    return "\n".join(_text_of(r.get("content")) for r in results)


def last_tool_failed(body: dict[str, Any]) -> bool:
    """Claude Code marks a tool's error or a permission denial with `is_error: true`."""
    return any(r.get("is_error") for r in _last_tool_results(body))


def default_rule(body: dict[str, Any]) -> dict[str, Any]:
    prompt = first_user_text(body)
    if not body.get("tools"):
        return {"text": "Eve test session"}
    m = re.search(r"\[\[api_error(?::\s*(\d{3}))?\]\]", prompt)
    if m:
        return {"error": int(m.group(1) or 400)}
    if "[[hang]]" in prompt:
        return {"hang": True}
    result = last_tool_result(body)
    if result is not None:
        if last_tool_failed(body):  # never a canned success: say it failed, as a model would
            return {"text": f"I could not do it: the tool failed.\n{TOOL_FAILED_MARK}\n{result.strip()}"}
        return {"text": f"Done. The tool said:\n{result.strip()}"}
    m = re.search(r"\[\[bash:\s*(.+?)\]\]", prompt, re.S)
    if m:
        return {"tool": "Bash", "input": {"command": m.group(1).strip(), "description": "Run the requested command"}}
    m = re.search(r'[Ee]cho\s+"([^"]*)"\s+using the Bash tool', prompt)
    if m:
        return {"tool": "Bash", "input": {"command": f'echo "{m.group(1)}"', "description": "Echo the text"}}
    m = re.search(r"\[\[read:\s*(.+?)\]\]", prompt)
    if m:
        return {"tool": "Read", "input": {"file_path": m.group(1).strip()}}
    m = re.search(r"\[\[text:\s*(.+?)\]\]", prompt, re.S)
    if m:
        return {"text": m.group(1).strip()}
    return {"text": f"You said: {prompt.strip()[:200]}"}


class FakeAnthropic:
    """The fake server; `with FakeAnthropic() as fake: ... fake.url ...`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.requests: list[dict[str, Any]] = []
        self.rules: list[Rule] = []
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add_rule(self, rule: Rule) -> None:
        self.rules.insert(0, rule)

    def respond(self, body: dict[str, Any]) -> dict[str, Any]:
        for rule in self.rules:
            spec = rule(body)
            if spec is not None:
                return spec
        return default_rule(body)

    def record(self, path: str, body: Any) -> None:
        with self._lock:
            self.requests.append({"path": path, "body": body, "at": time.time()})

    def main_requests(self, marker: str | None = None) -> list[dict[str, Any]]:
        """The recorded /v1/messages calls that carried tools (the agent's own turns);
        with `marker`, only those whose prompt contains it (one test's requests)."""
        with self._lock:
            return [r for r in self.requests
                    if r["path"].split("?", 1)[0].endswith("/v1/messages") and isinstance(r["body"], dict)
                    and r["body"].get("tools") and (marker is None or marker in first_user_text(r["body"]))]

    def start(self) -> FakeAnthropic:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    owner: FakeAnthropic
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # keep test output clean
        pass

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return {"_raw": raw[:200].decode(errors="replace")}

    def _json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:12]}")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self.owner.record(self.path, None)
        self._json(200, {"data": [], "has_more": False})

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        self.owner.record(self.path, body)
        path = self.path.split("?", 1)[0]
        if path.endswith("/count_tokens"):
            self._json(200, {"input_tokens": 100})
            return
        if not path.endswith("/v1/messages"):
            self._json(200, {})
            return
        spec = self.owner.respond(body if isinstance(body, dict) else {})
        if spec.get("hang"):
            self.owner._stop.wait()
            return
        if "error" in spec:
            status = int(spec["error"])
            kind = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
                    529: "overloaded_error"}.get(status, "api_error")
            self._json(status, {"type": "error", "error": {"type": kind, "message": f"fake {kind} ({status})"}})
            return
        message = _message(body, spec)
        if body.get("stream"):
            self._stream(message, float(spec.get("delay", _slow(body))))
        else:
            self._json(200, message)

    def _stream(self, message: dict[str, Any], delay: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()

        def send(event: str, data: dict[str, Any]) -> None:
            self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()
            if delay:
                time.sleep(delay)

        start = {**message, "content": [], "stop_reason": None,
                 "usage": {**message["usage"], "output_tokens": 1}}
        send("message_start", {"type": "message_start", "message": start})
        for i, block in enumerate(message["content"]):
            if block["type"] == "text":
                send("content_block_start", {"type": "content_block_start", "index": i,
                                             "content_block": {"type": "text", "text": ""}})
                send("content_block_delta", {"type": "content_block_delta", "index": i,
                                             "delta": {"type": "text_delta", "text": block["text"]}})
            else:
                send("content_block_start", {"type": "content_block_start", "index": i,
                                             "content_block": {**block, "input": {}}})
                send("content_block_delta", {"type": "content_block_delta", "index": i,
                                             "delta": {"type": "input_json_delta",
                                                       "partial_json": json.dumps(block["input"])}})
            send("content_block_stop", {"type": "content_block_stop", "index": i})
        send("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                               "usage": {"output_tokens": message["usage"]["output_tokens"]}})
        send("message_stop", {"type": "message_stop"})
        self.close_connection = True


def _slow(body: dict[str, Any]) -> float:
    m = re.search(r"\[\[slow:\s*([0-9.]+)\]\]", first_user_text(body))
    return float(m.group(1)) if m else 0.0


def _message(body: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    if "tool" in spec:
        content: list[dict[str, Any]] = [{"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}",
                                          "name": spec["tool"], "input": spec["input"]}]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": spec.get("text", "")}]
        stop = "end_turn"
    return {"id": f"msg_{uuid.uuid4().hex[:20]}", "type": "message", "role": "assistant",
            "model": body.get("model", "claude-sonnet-4-5"), "content": content, "stop_reason": stop,
            "stop_sequence": None, "usage": dict(USAGE)}


def main() -> None:  # pragma: no cover - manual use
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8787)
    args = parser.parse_args()
    fake = FakeAnthropic(port=args.port).start()
    print(f"fake Anthropic API on {fake.url} (Ctrl+C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
