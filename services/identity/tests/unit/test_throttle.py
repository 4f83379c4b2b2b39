"""Failed attempts lock a name for a while, longer with each further failure, and are forgotten in time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from identity.core.throttle import Failures, Limits, after_failure, forgettable, locked_for_s

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
LIMITS = Limits(failure_limit=3, window_s=900, lockout_s=60, lockout_max_s=300)


def fail(times: int, state: Failures | None = None, at: datetime = T0, every_s: float = 1) -> Failures:
    for i in range(times):
        state = after_failure(state, at + timedelta(seconds=i * every_s), LIMITS)
    assert state is not None
    return state


def test_failures_below_the_limit_do_not_lock() -> None:
    state = fail(2)
    assert state.count == 2 and locked_for_s(state, T0 + timedelta(seconds=2)) is None


def test_the_limit_locks_for_the_lockout() -> None:
    state = fail(3)
    assert locked_for_s(state, T0 + timedelta(seconds=2)) == 60
    assert locked_for_s(state, T0 + timedelta(seconds=62)) is None


def test_each_failure_after_a_lockout_doubles_it_up_to_the_cap() -> None:
    state = fail(3)
    after = T0 + timedelta(seconds=70)
    state = after_failure(state, after, LIMITS)
    assert locked_for_s(state, after) == 120
    state = after_failure(state, after + timedelta(seconds=130), LIMITS)
    assert locked_for_s(state, after + timedelta(seconds=130)) == 240
    state = after_failure(state, after + timedelta(seconds=400), LIMITS)
    assert locked_for_s(state, after + timedelta(seconds=400)) == 300  # the cap


def test_failures_further_apart_than_the_window_start_the_count_again() -> None:
    state = fail(2)
    later = T0 + timedelta(seconds=2000)
    assert after_failure(state, later, LIMITS) == Failures(1, later)


def test_a_record_is_forgettable_once_unlocked_and_outside_the_window() -> None:
    state = fail(3)
    assert not forgettable(state, T0 + timedelta(seconds=30), LIMITS)
    assert not forgettable(state, T0 + timedelta(seconds=600), LIMITS)
    assert forgettable(state, T0 + timedelta(seconds=1000), LIMITS)


def test_many_failures_do_not_overflow_the_doubling() -> None:
    state = fail(200)
    assert locked_for_s(state, T0 + timedelta(seconds=199)) == 300
