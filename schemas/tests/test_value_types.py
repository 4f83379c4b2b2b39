"""Exact decimals, aware datetimes, identifiers and the invariants payloads enforce."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from amiflow_schemas import decode_event, encode_event, new_envelope
from amiflow_schemas.events import (
    DailySettled,
    PaymentReceived,
    ReadingReceived,
    ReadingValidated,
    RegisterValue,
)
from amiflow_schemas.examples import AT, example_envelope, example_id, example_payloads
from amiflow_schemas.payload import EventPayload, PayloadPart
from amiflow_schemas.primitives import ReadingSource, Unit, Utility
from pydantic import BaseModel, ValidationError

EXAMPLES = example_payloads()


def _payment(amount: Any, currency: str = "CNY") -> PaymentReceived:
    return PaymentReceived(account_id="A1", channel="alipay", provider_transaction_id="tx-1",
                           amount=amount, currency=currency, paid_at=AT)


def _reading(**changes: Any) -> ReadingReceived:
    fields: dict[str, Any] = dict(
        meter_id="M1", utility=Utility.WATER, measured_at=AT,
        registers=(RegisterValue(register="total", value=Decimal("1"), unit=Unit.M3),),
        source=ReadingSource.DTU, gateway_id="G1",
    )
    return ReadingReceived(**{**fields, **changes})


def _round_trip(payload: EventPayload) -> Any:
    return decode_event(encode_event(example_envelope(payload))).payload


def test_decimal_arithmetic_is_exact_after_a_round_trip() -> None:
    first, second = _round_trip(_payment("0.1")), _round_trip(_payment("0.2"))

    assert first.amount + second.amount == Decimal("0.3")
    assert str(first.amount + second.amount) == "0.3"


def test_decimals_travel_as_fixed_point_strings_keeping_every_digit() -> None:
    amount = Decimal("12345678901234567890.000000012")
    raw = encode_event(example_envelope(_payment(amount)))

    assert b'"amount":"12345678901234567890.000000012"' in raw
    assert b'"0.0000001"' in encode_event(example_envelope(_payment(Decimal("1E-7"))))
    assert _round_trip(_payment(amount)).amount == amount


def test_trailing_zeros_of_money_are_kept() -> None:
    assert str(_round_trip(_payment("60.00")).amount) == "60.00"


@pytest.mark.parametrize("amount", [0.1, float("nan"), "NaN", "Infinity", True])
def test_floats_and_non_finite_numbers_are_refused_as_money(amount: Any) -> None:
    with pytest.raises(ValidationError):
        _payment(amount)


@pytest.mark.parametrize("amount", ["0", "-5.00", "0.00"])
def test_a_payment_must_be_positive(amount: str) -> None:
    with pytest.raises(ValidationError):
        _payment(amount)


@pytest.mark.parametrize("currency", ["cny", "YUAN", "CN", ""])
def test_currency_is_three_capital_letters(currency: str) -> None:
    with pytest.raises(ValidationError):
        _payment("1.00", currency)


def test_naive_datetime_is_rejected_in_payloads_and_envelopes() -> None:
    naive = datetime(2026, 7, 1, 12, 0)  # naive on purpose

    with pytest.raises(ValidationError, match="timezone"):
        _reading(measured_at=naive)
    with pytest.raises(ValidationError, match="timezone"):
        new_envelope(_reading(), event_id=example_id("x"), tenant_id="t", key="M1",
                     occurred_at=naive, recorded_at=AT, producer="ingest")


@pytest.mark.parametrize("meter_id", ["", " M1", "M 1", "M1\n", "M\x001", "M\x851", "x" * 129])
def test_identifiers_refuse_empty_whitespace_control_characters_and_overlong(meter_id: str) -> None:
    with pytest.raises(ValidationError):
        _reading(meter_id=meter_id)


def test_identifiers_accept_printable_ids_including_non_ascii() -> None:
    assert _reading(meter_id="水表-0001/A_1.2").meter_id == "水表-0001/A_1.2"


def test_a_register_unit_must_measure_the_utility() -> None:
    kwh = RegisterValue(register="total", value=Decimal("1"), unit=Unit.KWH)

    with pytest.raises(ValidationError, match="not a water unit"):
        _reading(registers=(kwh,))


def test_register_name_is_required() -> None:
    with pytest.raises(ValidationError, match="register"):
        RegisterValue(value=Decimal("1"), unit=Unit.M3)  # type: ignore[call-arg]


def test_register_names_do_not_repeat_in_one_reading() -> None:
    total = RegisterValue(register="total", value=Decimal("1"), unit=Unit.M3)

    with pytest.raises(ValidationError, match="repeat"):
        _reading(registers=(total, total))


def test_a_reading_has_at_least_one_register() -> None:
    with pytest.raises(ValidationError):
        _reading(registers=())


def _validated(**changes: Any) -> ReadingValidated:
    fields = EXAMPLES["ReadingValidated"].model_dump()
    return ReadingValidated(**{**fields, **changes})


def test_an_estimated_reading_names_its_method_and_an_actual_one_does_not() -> None:
    with pytest.raises(ValidationError, match="estimation_method"):
        _validated(status="estimated", estimation_method=None)
    with pytest.raises(ValidationError, match="estimation_method"):
        _validated(status="actual", estimation_method="like_day")
    assert _validated(status="estimated", estimation_method="like_day").estimation_method


def test_consumption_and_its_unit_come_together_and_are_absent_on_a_first_reading() -> None:
    with pytest.raises(ValidationError, match="consumption_unit"):
        _validated(consumption_unit=None)
    first = _validated(consumption=None, consumption_unit=None, previous_measured_at=None)
    assert first.consumption is None


def test_a_failed_reading_carries_no_consumption() -> None:
    with pytest.raises(ValidationError, match="no consumption"):
        _validated(status="failed")


def test_a_daily_settlement_must_add_up() -> None:
    fields = EXAMPLES["DailySettled"].model_dump()

    with pytest.raises(ValidationError, match="closing_balance"):
        DailySettled(**{**fields, "closing_balance": Decimal("14.51")})


def _all_models() -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    pending: list[type[BaseModel]] = [EventPayload, PayloadPart]
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_no_field_gets_a_default_by_accident() -> None:
    # A field named like a class attribute (e.g. ABCMeta.register) silently becomes optional.
    for model in _all_models():
        for name, field in model.model_fields.items():
            assert not callable(field.default), f"{model.__name__}.{name} defaults to {field.default}"
