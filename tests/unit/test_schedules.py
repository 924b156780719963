"""Cron arithmetic with a controllable clock: parsing, DST, catch-up. No database, no real time."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from eve.errors import InvalidWorkerType, ValidationError
from eve.schedules import (
    InvalidCron, ScheduleSpec, decide, next_after, next_times, parse_cron, parse_timezone, validate,
)

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("expr", ["0 3 * * *", "*/15 * * * *", "0 9 * * MON-FRI", "30 2 1,15 * *",
                                  "0 0 * JAN,JUL SUN", "@hourly", "@daily", "@weekly", "@DAILY"])
def test_valid_expressions_parse(expr):
    assert parse_cron(expr)


@pytest.mark.parametrize(("expr", "field", "value"), [
    ("61 * * * *", "minute", "61"), ("0 24 * * *", "hour", "24"), ("0 0 0 * *", "day-of-month", "0"),
    ("0 0 * 13 *", "month", "13"), ("0 0 * * 9", "day-of-week", "9"), ("*/0 * * * *", "minute", "*/0"),
    ("0 x * * *", "hour", "x"),
])
def test_bad_fields_are_named(expr, field, value):
    with pytest.raises(InvalidCron) as exc:
        parse_cron(expr)
    assert f"bad {field} field {value!r}" in exc.value.message
    assert exc.value.code == "invalid_cron" and exc.value.http_status == 400


@pytest.mark.parametrize("expr", ["", "   ", "* * * *", "* * * * * *", "0 0 * * * * *", "@often", None, 5])
def test_wrong_shapes_are_refused(expr):
    with pytest.raises(InvalidCron):
        parse_cron(expr)


def test_six_fields_only_with_the_seconds_test_hook():
    with pytest.raises(InvalidCron, match="6 fields"):
        parse_cron("*/2 * * * * *")
    assert parse_cron("*/2 * * * * *", seconds=True) == "*/2 * * * * *"
    assert next_times("*/2 * * * * *", "UTC", at(2026, 1, 1, 12), 3) == [
        at(2026, 1, 1, 12, 0, 2), at(2026, 1, 1, 12, 0, 4), at(2026, 1, 1, 12, 0, 6)]


def test_timezones_must_be_iana():
    assert parse_timezone("Europe/Berlin") == BERLIN
    for bad in ("Mars/Olympus", "", "../etc/passwd", "CEST+2", "Europe/Berlin\x00"):
        with pytest.raises(ValidationError, match="IANA"):
            parse_timezone(bad)


def test_validate_names_and_bounds():
    ok = ScheduleSpec(name="nightly", cron_expression="0 3 * * *", worker_type="general", prompt="review")
    assert validate(ok).cron_expression == "0 3 * * *"
    for change, match in ((dict(name="has space"), "schedule name"), (dict(overlap="sometimes"), "overlap"),
                          (dict(max_delay_seconds=-1), "maxDelayS"), (dict(prompt=" "), "prompt"),
                          (dict(timezone="Nowhere/Land"), "IANA"), (dict(priority=5000), "priority"),
                          (dict(config={"bogus": 1}), "unknown config key")):
        spec = dataclasses.replace(ok, **change)
        with pytest.raises(ValidationError, match=match):
            validate(spec)
    with pytest.raises(InvalidWorkerType):
        validate(ScheduleSpec(name="x", cron_expression="@daily", worker_type="Bad Type\x00", prompt="p"))


# -- next fire times and DST -------------------------------------------------------------------


def test_daily_0230_berlin_across_spring_forward():
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that night.
    ticks = next_times("30 2 * * *", BERLIN, at(2026, 3, 27, 12), 4)
    local = [t.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for t in ticks]
    assert local == ["03-28 02:30 CET", "03-29 03:00 CEST", "03-30 02:30 CEST", "03-31 02:30 CEST"]
    # exactly one run per day: no day skipped, none doubled
    assert len({t.astimezone(BERLIN).date() for t in ticks}) == 4


def test_daily_0230_berlin_across_fall_back_runs_once():
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice, the schedule once.
    ticks = next_times("30 2 * * *", BERLIN, at(2026, 10, 23, 12), 4)
    assert ticks == [at(2026, 10, 24, 0, 30), at(2026, 10, 25, 0, 30), at(2026, 10, 26, 1, 30),
                     at(2026, 10, 27, 1, 30)]
    # asked from between the two 02:30s (after the first ran), the next is the next day's
    assert next_after("30 2 * * *", BERLIN, at(2026, 10, 25, 1, 15)) == at(2026, 10, 26, 1, 30)


def test_hourly_in_berlin_fall_back_hour_is_not_run_twice():
    ticks = next_times("0 * * * *", BERLIN, at(2026, 10, 24, 23, 30), 4)
    assert ticks == sorted(set(ticks)) and all(b > a for a, b in zip(ticks, ticks[1:]))


def test_macros_follow_their_expansions():
    now = at(2026, 11, 25, 10, 17)
    assert next_after("@hourly", "UTC", now) == at(2026, 11, 25, 11)
    assert next_after("@daily", "UTC", now) == at(2026, 11, 26)
    assert next_after("@weekly", "UTC", now) == at(2026, 11, 29)  # Sunday 00:00
    assert next_after("@daily", BERLIN, now) == at(2026, 11, 25, 23)  # midnight CET


# -- due ticks: the catch-up rule --------------------------------------------------------------


def test_nothing_due_before_the_tick():
    d = decide("0 3 * * *", "UTC", at(2026, 1, 2, 3), at(2026, 1, 2, 2, 59, 59))
    assert d.fire_at is None and d.next_fire_at == at(2026, 1, 2, 3)


def test_on_time_tick_fires_and_moves_on():
    d = decide("0 3 * * *", "UTC", at(2026, 1, 2, 3), at(2026, 1, 2, 3, 0, 0, 4000))
    assert (d.fire_at, d.missed, d.next_fire_at) == (at(2026, 1, 2, 3), False, at(2026, 1, 3, 3))


def test_catch_up_fires_only_the_latest_tick_within_max_delay():
    # every minute, down from 10:00 to 10:07:30: one fire, for 10:07, not eight
    d = decide("* * * * *", "UTC", at(2026, 1, 1, 10), at(2026, 1, 1, 10, 7, 30), max_delay_s=600)
    assert (d.fire_at, d.missed, d.next_fire_at) == (at(2026, 1, 1, 10, 7), False, at(2026, 1, 1, 10, 8))


def test_catch_up_skips_a_tick_older_than_max_delay():
    # nightly at 03:00, everything down until 03:20 with max_delay 10 min: missed, next is tomorrow
    d = decide("0 3 * * *", "UTC", at(2026, 1, 2, 3), at(2026, 1, 2, 3, 20), max_delay_s=600)
    assert d.missed and d.fire_at == at(2026, 1, 2, 3) and d.next_fire_at == at(2026, 1, 3, 3)
    # the same outage with max_delay 30 min still runs it, once
    d = decide("0 3 * * *", "UTC", at(2026, 1, 2, 3), at(2026, 1, 2, 3, 20), max_delay_s=1800)
    assert not d.missed and d.fire_at == at(2026, 1, 2, 3)


def test_a_month_long_outage_is_cheap_and_fires_at_most_once():
    d = decide("* * * * *", "UTC", at(2026, 1, 1), at(2026, 2, 1, 0, 0, 30), max_delay_s=600)
    assert d.fire_at == at(2026, 2, 1) and not d.missed


def test_decide_across_dst_with_a_clock_that_moves():
    """Walk a fake clock through both Berlin transitions: one fire per day, at the right instants."""
    fired = []
    nxt = next_after("30 2 * * *", BERLIN, at(2026, 3, 27))
    clock = at(2026, 3, 27)
    while clock < at(2026, 11, 1):
        clock += timedelta(minutes=7)
        d = decide("30 2 * * *", BERLIN, nxt, clock)
        if d.fire_at is not None:
            assert not d.missed
            fired.append(d.fire_at)
            nxt = d.next_fire_at
    days = [f.astimezone(BERLIN).date() for f in fired]
    assert len(days) == len(set(days)) == (datetime(2026, 11, 1) - datetime(2026, 3, 27)).days
    assert at(2026, 3, 29, 1) in fired  # 03:00 CEST on the spring-forward day
    assert at(2026, 10, 25, 0, 30) in fired and at(2026, 10, 25, 1, 30) not in fired
