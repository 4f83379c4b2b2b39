"""next_allowed_instant: local quiet windows, weekends and holidays in the tenant's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.commands import ScheduleHold
from amiflow_schemas.primitives import Utility
from commands.core.policy import (
    CutOffPolicy,
    QuietWindow,
    Weekday,
    allowed_from,
    earliest_cut_off,
    next_allowed_instant,
)
from pydantic import ValidationError

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NIGHTS_AND_WEEKENDS = CutOffPolicy(policy_id="p", cut_utilities=frozenset({Utility.ELECTRICITY}),
                                   quiet_windows=(QuietWindow(start=time(18), end=time(8)),),
                                   quiet_weekdays=frozenset({Weekday.SAT, Weekday.SUN}))


def test_b4_friday_2310_in_shanghai_is_allowed_from_monday_0800():
    friday = datetime(2026, 7, 3, 23, 10, tzinfo=SH)
    assert next_allowed_instant(NIGHTS_AND_WEEKENDS, friday, SH) == datetime(2026, 7, 6, 8, 0, tzinfo=SH)


def test_the_same_instant_given_in_utc_gives_the_same_answer():
    friday_utc = datetime(2026, 7, 3, 15, 10, tzinfo=UTC)
    assert next_allowed_instant(NIGHTS_AND_WEEKENDS, friday_utc, SH) == datetime(2026, 7, 6, 0, 0, tzinfo=UTC)


def test_an_allowed_instant_is_returned_as_it_is_and_a_window_ends_at_its_end_time():
    wednesday_noon = datetime(2026, 7, 1, 12, 0, tzinfo=SH)
    assert next_allowed_instant(NIGHTS_AND_WEEKENDS, wednesday_noon, SH) == wednesday_noon
    assert allowed_from(NIGHTS_AND_WEEKENDS, wednesday_noon, SH)[1] == ()
    eight = datetime(2026, 7, 1, 8, 0, tzinfo=SH)
    assert next_allowed_instant(NIGHTS_AND_WEEKENDS, eight, SH) == eight
    assert next_allowed_instant(NIGHTS_AND_WEEKENDS, eight - timedelta(seconds=1), SH) == eight


def test_a_holiday_monday_moves_the_friday_night_cut_off_to_tuesday_morning():
    policy = NIGHTS_AND_WEEKENDS.model_copy(update={"holidays": frozenset({date(2026, 7, 6)})})
    friday = datetime(2026, 7, 3, 23, 10, tzinfo=SH)
    at, holds = allowed_from(policy, friday, SH)
    assert at == datetime(2026, 7, 7, 8, 0, tzinfo=SH)
    assert holds == (ScheduleHold.QUIET_WINDOW, ScheduleHold.HOLIDAY)


def test_a_window_on_some_weekdays_only_applies_on_the_nights_it_starts():
    friday_nights = NIGHTS_AND_WEEKENDS.model_copy(update={
        "quiet_weekdays": frozenset(), "quiet_windows": (QuietWindow(start=time(22), end=time(6),
                                                                     weekdays=frozenset({Weekday.FRI})),)})
    thursday_night = datetime(2026, 7, 2, 23, 0, tzinfo=SH)
    saturday_0200 = datetime(2026, 7, 4, 2, 0, tzinfo=SH)
    assert next_allowed_instant(friday_nights, thursday_night, SH) == thursday_night
    assert next_allowed_instant(friday_nights, saturday_0200, SH) == datetime(2026, 7, 4, 6, 0, tzinfo=SH)


def test_windows_are_local_wall_clock_across_a_daylight_saving_change():
    # Europe/Berlin goes to summer time at 02:00 on Sunday 2026-03-29: 08:00 is then UTC+2.
    policy = NIGHTS_AND_WEEKENDS.model_copy(update={"quiet_weekdays": frozenset()})
    saturday_night = datetime(2026, 3, 28, 23, 0, tzinfo=BERLIN)
    allowed = next_allowed_instant(policy, saturday_night, BERLIN)
    assert allowed == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    assert allowed.astimezone(BERLIN).hour == 8


def test_a_policy_that_never_allows_a_cut_off_is_refused_rather_than_looping():
    always = NIGHTS_AND_WEEKENDS.model_copy(update={"quiet_weekdays": frozenset(Weekday)})
    with pytest.raises(ValueError, match="allows no cut-off"):
        next_allowed_instant(always, datetime(2026, 7, 1, tzinfo=SH), SH)


def test_the_minimum_interval_and_an_exemption_both_push_the_start_before_the_windows_apply():
    policy = NIGHTS_AND_WEEKENDS.model_copy(update={"min_cut_off_interval": timedelta(hours=12)})
    now = datetime(2026, 7, 1, 9, 0, tzinfo=SH)
    at, holds = earliest_cut_off(policy, now, SH, exempt_until=None, last_cut_off_at=now - timedelta(hours=1))
    assert at == datetime(2026, 7, 2, 8, 0, tzinfo=SH)  # 20:00 is in the night window
    assert holds == (ScheduleHold.QUIET_WINDOW, ScheduleHold.MIN_INTERVAL)


def test_a_policy_document_is_validated():
    with pytest.raises(ValidationError, match="different start and end"):
        QuietWindow(start=time(8), end=time(8))
    with pytest.raises(ValidationError, match="relay_restore"):
        CutOffPolicy(policy_id="p", cut_utilities=frozenset(), relay_restore="relay_trip")
    with pytest.raises(ValidationError, match="quiet_hours"):
        CutOffPolicy.model_validate({"policy_id": "p", "cut_utilities": ["water"], "quiet_hours": []})
    document = NIGHTS_AND_WEEKENDS.model_dump(mode="json")
    assert CutOffPolicy.model_validate(document) == NIGHTS_AND_WEEKENDS
