"""Questions in `eve ui`: header count, questions screen, answer dialog — Pilot and snapshots.

A fake client with fixed questions; answers go through its answer_question like the real
EveClient's, and refusals (409) come back as ApiErrors.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from textual.widgets import Button, DataTable, Input, Static

from eve.client import ApiError
from eve.tui.screens.questions import AnswerModal, QuestionsScreen
from eve.tui.screens.request import RequestScreen
from tests.tui import conftest
from tests.tui.fakes import NOW, FakeClient, iso, make_request

SIZES = [pytest.param((120, 40), id="120x40"), pytest.param((80, 24), id="80x24")]


def make_question(i: int, request: dict[str, Any], question: str, options: list[str], *,
                  status: str = "pending", asked_min: int = 5) -> dict[str, Any]:
    return {"id": f"9e57{i:04x}-0000-4000-8000-{i:012x}", "requestId": request["id"], "orgId": request["orgId"],
            "orgSlug": "acme", "workerType": request["workerType"], "requestStatus": request["status"],
            "requestPrompt": request["prompt"], "question": question, "options": options, "status": status,
            "answer": None, "answeredVia": None, "answeredBy": None, "answeredByName": None,
            "askedAt": iso(NOW - timedelta(minutes=asked_min)),
            "expiresAt": iso(NOW + timedelta(hours=2) - timedelta(minutes=asked_min)),
            "answeredAt": None, "closedAt": None}


class QuestionClient(FakeClient):
    """FakeClient plus the questions calls; two waiting requests, each with a pending question."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.requests.insert(0, make_request(41, "waiting", "general", "Deploy v2 of the billing service"))
        self.requests.insert(1, make_request(42, "waiting", "code-review", "Merge the dependency bumps"))
        self.questions = [
            make_question(1, self.requests[0], "Deploy v2 to production?", ["yes", "no"], asked_min=12),
            make_question(2, self.requests[1], "Which branch should the fixes go to? [red]main[/red] or a "
                                               "release branch?", [], asked_min=3),
        ]
        self.refuse: ApiError | None = None

    async def list_questions(self, *, status: str | None = None, org: str | None = None,
                             request_id: str | None = None, limit: int | None = None) -> dict[str, Any]:
        await self._check("list_questions", {"status": status, "request_id": request_id, "limit": limit})
        items = [q for q in self.questions if (status is None or q["status"] == status)
                 and (request_id is None or q["requestId"] == request_id)]
        return {"items": copy.deepcopy(items[:limit or 100]), "total": len(items)}

    async def answer_question(self, question_id: str, answer: str) -> dict[str, Any]:
        await self._check("answer_question", {"id": question_id, "answer": answer})
        if self.refuse is not None:
            raise self.refuse
        q = next(x for x in self.questions if x["id"] == question_id)
        q.update(status="answered", answer=answer, answeredByName="ops@acme.example", answeredVia="api")
        return copy.deepcopy(q)


def make_app(client: Any = None, **kw: Any) -> Any:
    kw.setdefault("refresh_s", 600)
    return conftest.make_app(client or QuestionClient(), **kw)


def grid(app: Any) -> DataTable:
    return app.screen.query_one("#question-grid", DataTable)


def row_text(app: Any, i: int) -> list[str]:
    return [str(getattr(c, "plain", c)) for c in grid(app).get_row_at(i)]


async def _until(pilot: Any, check: Any, what: str) -> None:
    for _ in range(250):
        if check():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_header_count_is_bright_when_someone_waits_and_dim_at_zero():
    client = QuestionClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(pilot, lambda: app.pending_questions == 2, "the count")
        header = app.header_text()
        assert "2 questions (a)" in header.plain
        [span] = [s for s in header.spans if header.plain[s.start:s.end].strip() == "2 questions (a)"]
        assert "bright_yellow" in str(span.style)
        for q in client.questions:
            q["status"] = "answered"
        app.refresh_data()
        await _until(pilot, lambda: app.pending_questions == 0, "the count to drop")
        header = app.header_text()
        assert "0 questions" in header.plain and "(a)" not in header.plain
        [span] = [s for s in header.spans if header.plain[s.start:s.end] == "0 questions"]
        assert str(span.style) == "bright_black"


async def test_an_api_without_questions_shows_no_count():
    app = conftest.make_app(FakeClient())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        assert app.pending_questions is None and "question" not in app.header_text().plain


async def test_answer_with_an_option_key_from_the_questions_screen():
    client = QuestionClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("a")
        await _until(pilot, lambda: isinstance(app.screen, QuestionsScreen) and grid(app).row_count == 2, "rows")
        first = row_text(app, 0)
        assert first[0] == client.questions[0]["id"][:8] and first[2] == "Deploy v2 to production?"
        assert first[3] == "yes / no" and first[4] == "1h48m" and first[5] == "pending"
        assert first[6] == client.requests[0]["id"][:8]
        assert row_text(app, 1)[3] == "(free text)"
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, AnswerModal), "the dialog")
        labels = [str(b.label) for b in app.screen.query(Button)]
        assert labels == ["1: yes", "2: no"]
        await pilot.press("2", "y")  # y: the answer asks first
        await _until(pilot, lambda: isinstance(app.screen, QuestionsScreen), "the dialog to close")
        assert ("answer_question", {"id": client.questions[0]["id"], "answer": "no"}) in client.calls
        await _until(pilot, lambda: grid(app).row_count == 1, "the answered one to leave the pending list")
        await pilot.press("v")
        await _until(pilot, lambda: grid(app).row_count == 2, "all questions")
        assert "answered" in [row_text(app, i)[5] for i in range(2)]


async def test_free_text_answer_and_a_refusal_shown_in_the_dialog():
    client = QuestionClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("a")
        await _until(pilot, lambda: isinstance(app.screen, QuestionsScreen) and grid(app).row_count == 2, "rows")
        await pilot.press("down", "enter")
        await _until(pilot, lambda: isinstance(app.screen, AnswerModal), "the dialog")
        modal = app.screen
        # the agent's text is shown as it is: no markup interpreted
        assert "[red]main[/red]" in str(modal.query_one("#answer-question", Static).content)
        client.refuse = ApiError(409, "question_closed", "question 9e570000 was already answered by ann@acme.example")
        modal.query_one("#answer-input", Input).value = "a release branch"
        await pilot.press("enter", "y")
        await _until(pilot, lambda: "already answered by ann" in str(modal.query_one("#answer-error", Static).content),
                     "the refusal")
        assert isinstance(app.screen, AnswerModal)
        client.refuse = None
        await pilot.press("enter", "y")
        await _until(pilot, lambda: isinstance(app.screen, QuestionsScreen), "the dialog to close")
        assert client.calls.count(("answer_question", {"id": client.questions[1]["id"],
                                                        "answer": "a release branch"})) == 2


async def test_the_waiting_request_view_opens_the_dialog_for_its_question():
    client = QuestionClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.open_request(client.requests[0]["id"])
        await _until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.request is not None,
                     "the request")
        assert app.screen.check_action("answer", ()) is True
        await pilot.press("a")
        await _until(pilot, lambda: isinstance(app.screen, AnswerModal), "the dialog")
        assert app.screen.question["id"] == client.questions[0]["id"]
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RequestScreen) and client.count("answer_question") == 0
        await pilot.press("escape")
        app.open_request(client.requests[3]["id"])  # a failed one: nothing to answer
        await _until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.request is not None
                     and app.screen.request_id == client.requests[3]["id"], "the other request")
        assert app.screen.check_action("answer", ()) is False


async def test_read_only_cannot_answer():
    client = QuestionClient()
    app = make_app(client, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("a")
        await _until(pilot, lambda: isinstance(app.screen, QuestionsScreen) and grid(app).row_count == 2, "rows")
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, QuestionsScreen)
        app.open_request(client.requests[0]["id"])
        await _until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.request is not None,
                     "the request")
        assert app.screen.check_action("answer", ()) is False


async def _questions_loaded(pilot: Any) -> None:
    await pilot.press("a")
    await _until(pilot, lambda: isinstance(pilot.app.screen, QuestionsScreen) and grid(pilot.app).row_count == 2,
                 "rows")
    await pilot.pause()


async def _dialog_open(pilot: Any) -> None:
    await _questions_loaded(pilot)
    await pilot.press("enter")
    await _until(pilot, lambda: isinstance(pilot.app.screen, AnswerModal), "the dialog")
    await pilot.pause()


async def _free_text_dialog_open(pilot: Any) -> None:
    await _questions_loaded(pilot)
    await pilot.press("down", "enter")
    await _until(pilot, lambda: isinstance(pilot.app.screen, AnswerModal), "the dialog")
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_questions_screen_snapshot(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, run_before=_questions_loaded)


@pytest.mark.parametrize("size", SIZES)
def test_answer_dialog_snapshot(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, run_before=_dialog_open)


@pytest.mark.parametrize("size", SIZES)
def test_free_text_dialog_snapshot(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, run_before=_free_text_dialog_open)
