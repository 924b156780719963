"""The stream-json parser on recorded Claude Code output, garbage and truncated lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eve.executor.stream import StreamParser, summarize_tool_input

DATA = Path(__file__).parent / "data"


def parse_file(name: str, exit_code: int) -> tuple[list[tuple[str, dict]], object]:
    p = StreamParser()
    events = [e for line in (DATA / name).read_text().splitlines() for e in p.feed(line)]
    return events, p.outcome(exit_code)


def test_recorded_success_run():
    events, out = parse_file("stream_success.jsonl", 0)
    kinds = [k for k, _ in events]
    assert kinds == ["init", "tool_call", "tool_result", "text"]
    init = events[0][1]
    assert init["model"] and "Bash" in init["tools"]
    call = events[1][1]
    assert call["tool"] == "Bash" and call["summary"] == 'Bash echo "smoke test passed"'
    assert events[2][1]["content"] == "smoke test passed" and events[2][1]["tool"] == "Bash"
    assert out.status == "success" and "smoke test passed" in out.summary
    assert out.tokens_used == 240 + 60 + 80 and out.cost_usd == pytest.approx(0.002176)
    assert out.output["type"] == "result" and out.error_code is None


def test_recorded_api_error_run():
    _, out = parse_file("stream_api_error.jsonl", 1)
    assert out.status == "failed" and out.error_code == "api_error"
    assert "API Error: 400" in out.error and out.retryable is False


@pytest.mark.parametrize(("status", "retryable"), [(529, True), (429, True), (500, True), (400, False), (401, False)])
def test_api_error_retryability_by_status(status, retryable):
    p = StreamParser()
    p.feed(json.dumps({"type": "result", "is_error": True, "api_error_status": status, "result": "boom"}))
    out = p.outcome(1)
    assert out.error_code == "api_error" and out.retryable is retryable


def test_agent_error_is_final():
    p = StreamParser()
    p.feed(json.dumps({"type": "result", "subtype": "error_max_turns", "is_error": True, "result": "too many turns"}))
    out = p.outcome(1)
    assert (out.status, out.error_code, out.retryable) == ("failed", "agent_error", False)


def test_garbage_and_truncated_lines_do_not_crash():
    p = StreamParser()
    events = []
    for line in ["Welcome to mclaude!", '{"type": "assistant", "message": {"content": [', "[1, 2]", "", "   ",
                 '{"type": "mystery"}', "\x00\x01"]:
        events += p.feed(line)
    assert [k for k, _ in events] == ["stderr", "stderr", "stderr", "stderr"]
    assert events[0][1] == {"line": "Welcome to mclaude!", "stream": "stdout"}
    out = p.outcome(0)
    assert out.status == "failed" and out.error_code == "malformed_output"


def test_crash_without_result_is_variant_crashed_and_retryable():
    p = StreamParser()
    p.feed('{"type": "system", "subtype": "init", "model": "m", "tools": []}')
    out = p.outcome(137, stderr_tail="Segmentation fault")
    assert out.error_code == "variant_crashed" and out.retryable and "Segmentation fault" in out.error


def test_huge_tool_results_are_truncated():
    p = StreamParser()
    line = json.dumps({"type": "user", "message": {"content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "x" * 10_000}]}]}})
    [(kind, data)] = p.feed(line)
    assert kind == "tool_result" and len(data["content"]) < 2100 and data["content"].endswith("more chars]")


@pytest.mark.parametrize(("name", "tool_input", "expected"), [
    ("Read", {"file_path": "/src/auth/index.ts"}, "Read /src/auth/index.ts"),
    ("Grep", {"pattern": "password", "path": "/src"}, 'Grep "password" /src'),
    ("Glob", {"pattern": "**/*.ts"}, "Glob **/*.ts"),
    ("Bash", {"command": "ls\n  -la"}, "Bash ls -la"),
    ("WebFetch", {"url": "https://x.test", "prompt": "p"}, "WebFetch https://x.test"),
    ("Custom", {"a": 1}, 'Custom {"a": 1}'),
    ("Weird", "not a dict", "Weird"),
])
def test_tool_summaries(name, tool_input, expected):
    assert summarize_tool_input(name, tool_input) == expected
