"""A live event goes to every matching subscriber as one frame encoded once (daemons/api/sse.py)."""

from __future__ import annotations

import json

from litestar.response.sse import ServerSentEventMessage

from eve.daemons.api.sse import EncodedMessage, encoded


def test_a_live_event_is_encoded_once_and_reads_as_the_same_frame():
    calls: list[int] = []

    def to_json(row: dict) -> dict:
        calls.append(row["id"])
        return {"id": row["id"], "kind": row["kind"], "data": row["data"]}

    row = {"id": 7, "kind": "log", "data": {"line": "héllo\nworld"}}
    first = encoded(row, to_json)
    assert encoded(row, to_json) is first and calls == [7]  # the second subscriber reuses the bytes
    expected = ServerSentEventMessage(data=json.dumps(to_json(row), ensure_ascii=False, separators=(",", ":")),
                                      event="request_event", id=7).encode()
    assert first == expected
    assert EncodedMessage(first).encode() is first

    other = dict(row)  # another caller's fetch: its own row dict, its own frame
    assert encoded(other, lambda r: {"id": r["id"]}) != first
