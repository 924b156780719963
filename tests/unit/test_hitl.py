"""The pure parts of eve.hitl: answers matched to options, input checks, the lines agents and people read."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from eve import hitl
from eve.cli.output import describe_event
from eve.errors import ValidationError


def test_answers_match_an_option_ignoring_case_and_spaces_and_keep_its_spelling():
    assert hitl.match_answer("  YES ", ["Yes", "No"]) == "Yes"
    assert hitl.match_answer("ship it\nafter 5pm", []) == "ship it\nafter 5pm"
    with pytest.raises(hitl.OptionNotAllowed) as exc:
        hitl.match_answer("maybe", ["Yes", "No"])
    assert exc.value.options == ["Yes", "No"] and exc.value.message == "'maybe' is not one of the options: Yes, No"
    for bad in ("", "   ", None, 3, "x" * 4001, "bell\x07"):
        with pytest.raises(ValidationError):
            hitl.match_answer(bad, [])


def test_timeouts_default_to_a_day_and_are_bounded():
    assert hitl.validate_timeout(None) == 86400
    assert hitl.validate_timeout(2.5) == 2.5
    for bad in (0, -1, 31 * 86400, True, "2h"):
        with pytest.raises(ValidationError):
            hitl.validate_timeout(bad)


def test_events_read_as_sentences():
    assert describe_event("hitl_asked", {"question": "Deploy?", "options": ["yes", "no"]}) == \
        "Asked a person: Deploy? (yes / no)"
    assert describe_event("hitl_answered", {"answered_by": "Ann", "answer": "yes"}) == "Answered by Ann: yes"
    assert describe_event("hitl_cancelled", {"reason": "request cancelled"}) == "Question cancelled (request cancelled)"


def test_the_lines_a_resumed_agent_reads():
    at = datetime(2026, 12, 1, 23, 0, tzinfo=timezone.utc)
    assert hitl.answered_line("Ann", "Deploy?", "yes") == 'The human (Ann) answered "Deploy?": yes'
    assert hitl.expired_line(at, "Deploy?") == 'No answer by 2026-12-01 23:00:00 UTC to "Deploy?"'
