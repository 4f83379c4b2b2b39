"""Column types that keep datetimes aware and decimals exact on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from amiflow_runtime.db import ExactDecimal, UtcDateTime
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg

SQLITE = sqlite.dialect()
POSTGRES = asyncpg.dialect()


def test_a_naive_datetime_is_refused_on_the_way_in() -> None:
    with pytest.raises(ValueError, match="naive"):
        UtcDateTime().process_bind_param(datetime(2026, 7, 1, 12, 0), SQLITE)


def test_an_offset_datetime_is_stored_as_the_same_instant_in_utc() -> None:
    local = datetime(2026, 7, 1, 12, 0, tzinfo=timezone(timedelta(hours=8)))
    stored = UtcDateTime().process_bind_param(local, POSTGRES)
    assert stored == local
    assert stored is not None and stored.tzinfo is UTC
    assert stored.replace(tzinfo=None) == datetime(2026, 7, 1, 4, 0)


def test_a_naive_value_read_back_is_taken_as_utc() -> None:
    read = UtcDateTime().process_result_value(datetime(2026, 7, 1, 4, 0), SQLITE)
    assert read == datetime(2026, 7, 1, 4, 0, tzinfo=UTC)


def test_none_passes_through_both_ways() -> None:
    assert UtcDateTime().process_bind_param(None, SQLITE) is None
    assert UtcDateTime().process_result_value(None, SQLITE) is None
    assert ExactDecimal().process_bind_param(None, SQLITE) is None


def test_a_decimal_is_bound_as_text_on_sqlite() -> None:
    assert ExactDecimal().process_bind_param(Decimal("0.750"), SQLITE) == "0.750"


def test_a_decimal_is_bound_as_a_decimal_on_postgresql() -> None:
    bound = ExactDecimal().process_bind_param(Decimal("0.750"), POSTGRES)
    assert isinstance(bound, Decimal) and bound == Decimal("0.750")


def test_a_float_is_refused() -> None:
    with pytest.raises(TypeError, match="float"):
        ExactDecimal().process_bind_param(0.75, SQLITE)


def test_text_from_sqlite_reads_back_as_the_exact_decimal() -> None:
    assert str(ExactDecimal().process_result_value("0.750", SQLITE)) == "0.750"
