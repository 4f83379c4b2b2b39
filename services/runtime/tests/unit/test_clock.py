"""The clock tests move by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from amiflow_runtime.clock import FrozenClock, SystemClock

AT = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)


def test_a_frozen_clock_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        FrozenClock(datetime(2026, 7, 1, 4, 0))


def test_a_frozen_clock_stands_still_until_advanced() -> None:
    clock = FrozenClock(AT)
    assert clock.now() == AT
    clock.advance(timedelta(minutes=90))
    assert clock.now() == AT + timedelta(minutes=90)


def test_the_system_clock_is_aware_utc() -> None:
    assert SystemClock().now().utcoffset() == timedelta(0)
