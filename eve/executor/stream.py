"""Claude Code's `--output-format stream-json` → request events and one Outcome.

Pure and synchronous: it is fed one stdout line at a time as the agent streams, and
turns each into zero or more `(kind, data)` events (`init` with model and tools, `tool_call`,
`tool_result`, `text`). The final `result` line becomes the Outcome. Lines that are not
JSON (a variant's banner, a crash dump) become `stderr`-like `output` events instead of
crashing anything; a run that ends without a result line is `malformed_output` (or
`variant_crashed` when the process died with a non-zero status).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from eve.models import Outcome

MAX_RESULT_CHARS = 2000
MAX_TEXT_CHARS = 4000
MAX_INPUT_CHARS = 1000
RETRYABLE_API_STATUSES = {408, 409, 429, 500, 502, 503, 504, 529}


def summarize_tool_input(name: str, tool_input: Any) -> str:
    """A one-line human summary: `Read /src/auth/index.ts`, `Grep "password" /src`."""
    if not isinstance(tool_input, dict):
        return name
    if name == "Bash" and "command" in tool_input:
        arg = str(tool_input["command"])
    elif "file_path" in tool_input:
        arg = str(tool_input["file_path"])
    elif name == "Grep" and "pattern" in tool_input:
        arg = f'"{tool_input["pattern"]}" {tool_input.get("path") or tool_input.get("glob") or ""}'.strip()
    elif "pattern" in tool_input:
        arg = str(tool_input["pattern"])
    elif "url" in tool_input:
        arg = str(tool_input["url"])
    elif "description" in tool_input:
        arg = str(tool_input["description"])
    else:
        arg = json.dumps(tool_input, ensure_ascii=False)
    arg = " ".join(arg.split())
    return f"{name} {arg[:200]}" if arg else name


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_content_text(c.get("text", "") if isinstance(c, dict) else c) for c in content)
    return "" if content is None else str(content)


@dataclass
class StreamParser:
    """Feed lines with `feed()`; call `outcome()` when the process has exited."""

    result: dict[str, Any] | None = None
    init: dict[str, Any] | None = None
    lines: int = 0
    bad_lines: int = 0
    last_text: str = ""
    _tool_names: dict[str, str] = field(default_factory=dict)

    def feed(self, line: str) -> list[tuple[str, dict[str, Any]]]:
        line = line.strip()
        if not line:
            return []
        self.lines += 1
        try:
            msg = json.loads(line)
        except ValueError:
            self.bad_lines += 1
            return [("stderr", {"line": _truncate(line, MAX_TEXT_CHARS), "stream": "stdout"})]
        if not isinstance(msg, dict):
            self.bad_lines += 1
            return [("stderr", {"line": _truncate(line, MAX_TEXT_CHARS), "stream": "stdout"})]
        kind = msg.get("type")
        if kind == "system" and msg.get("subtype") == "init":
            self.init = msg
            return [("init", {"model": msg.get("model"), "tools": msg.get("tools", []),
                                 "session_id": msg.get("session_id"), "cwd": msg.get("cwd")})]
        if kind == "assistant":
            return self._assistant(msg)
        if kind == "user":
            return self._user(msg)
        if kind == "result":
            self.result = msg
            return []
        return []

    def _assistant(self, msg: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        for block in (msg.get("message") or {}).get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                name = str(block.get("name", "?"))
                self._tool_names[str(block.get("id"))] = name
                raw_input = json.dumps(block.get("input"), ensure_ascii=False)
                out.append(("tool_call", {"tool": name, "summary": summarize_tool_input(name, block.get("input")),
                                          "input": _truncate(raw_input, MAX_INPUT_CHARS),
                                          "tool_use_id": block.get("id")}))
            elif block.get("type") == "text" and block.get("text"):
                self.last_text = block["text"]
                out.append(("text", {"text": _truncate(block["text"], MAX_TEXT_CHARS)}))
        return out

    def _user(self, msg: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        content = (msg.get("message") or {}).get("content")
        if not isinstance(content, list):
            return out
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                tid = str(block.get("tool_use_id"))
                out.append(("tool_result", {"tool": self._tool_names.get(tid), "tool_use_id": tid,
                                            "content": _truncate(_content_text(block.get("content")),
                                                                 MAX_RESULT_CHARS),
                                            "is_error": bool(block.get("is_error"))}))
        return out

    def outcome(self, exit_code: int | None, *, stderr_tail: str = "", duration_ms: int | None = None) -> Outcome:
        """The result of the run, from the `result` line and the exit status."""
        res = self.result
        if res is None:
            if exit_code not in (0, None):
                detail = f": {stderr_tail.strip()[-500:]}" if stderr_tail.strip() else ""
                return Outcome(status="failed", error=f"variant exited with status {exit_code} before a result{detail}",
                               error_code="variant_crashed", duration_ms=duration_ms, retryable=True)
            return Outcome(status="failed", duration_ms=duration_ms, error_code="malformed_output",
                           error=f"the variant ended without a result line ({self.lines} lines, "
                                 f"{self.bad_lines} not JSON); is it really Claude Code with stream-json?")
        usage = res.get("usage") or {}
        tokens = sum(int(usage.get(k) or 0) for k in (
            "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        summary = res.get("result") if isinstance(res.get("result"), str) else None
        common = {"output": res, "summary": summary, "tokens_used": tokens,
                  "cost_usd": res.get("total_cost_usd"), "duration_ms": res.get("duration_ms", duration_ms)}
        if not res.get("is_error") and exit_code in (0, None):
            return Outcome(status="success", **common)
        api_status = res.get("api_error_status")
        if api_status or res.get("terminal_reason") == "api_error":
            return Outcome(status="failed", error=summary or f"provider API error {api_status}",
                           error_code="api_error", retryable=int(api_status or 0) in RETRYABLE_API_STATUSES, **common)
        if res.get("is_error"):
            return Outcome(status="failed", error=summary or str(res.get("subtype") or "agent error"),
                           error_code="agent_error", **common)
        return Outcome(status="failed", error=f"variant exited with status {exit_code} after its result",
                       error_code="variant_crashed", retryable=True, **common)
