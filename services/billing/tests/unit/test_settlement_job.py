"""The settlement job's pure parts: which days are due, and how accounts are cut into chunks."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from billing.settlement_app import chunks, days_to_settle, last_closed_day

ZONE = ZoneInfo("Asia/Shanghai")
DELAY = timedelta(minutes=10)


def test_a_day_is_closed_once_it_ended_the_delay_ago_in_the_accounts_zone() -> None:
    assert last_closed_day(datetime(2026, 7, 15, 0, 9, tzinfo=ZONE), ZONE, DELAY) == date(2026, 7, 13)
    assert last_closed_day(datetime(2026, 7, 15, 0, 10, tzinfo=ZONE), ZONE, DELAY) == date(2026, 7, 14)


def test_the_days_due_run_from_the_day_after_the_last_settled_one_or_the_opening_day() -> None:
    now = datetime(2026, 7, 15, 1, tzinfo=ZONE)
    assert days_to_settle(date(2026, 7, 12), date(2026, 7, 1), now, ZONE, DELAY) == [date(2026, 7, 13),
                                                                                     date(2026, 7, 14)]
    assert days_to_settle(None, date(2026, 7, 14), now, ZONE, DELAY) == [date(2026, 7, 14)]
    assert days_to_settle(date(2026, 7, 14), date(2026, 7, 1), now, ZONE, DELAY) == []


def test_chunks_keep_the_order_and_never_mix_tenants() -> None:
    accounts = [("t1", "A"), ("t1", "B"), ("t1", "C"), ("t2", "D"), ("t3", "E"), ("t3", "F")]
    assert chunks(accounts, 2) == [("t1", ["A", "B"]), ("t1", ["C"]), ("t2", ["D"]), ("t3", ["E", "F"])]
    assert chunks([], 500) == []
