"""One realistic, fixed example of every event, for the AsyncAPI document and for tests."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

from amiflow_schemas import events as ev
from amiflow_schemas.envelope import Envelope, new_envelope
from amiflow_schemas.events import accounts, alarms, audit, billing, commands, devices, notifications, readings, tariffs
from amiflow_schemas.events import registry as reg
from amiflow_schemas.payload import EventPayload
from amiflow_schemas.primitives import ReadingSource, RelayState, Unit, Utility, ValveState
from amiflow_schemas.registry import EVENT_TYPES
from amiflow_schemas.topics import topic_for_event

CST = timezone(timedelta(hours=8), "CST")
AT = datetime(2026, 7, 1, 12, 0, tzinfo=CST)
_NAMESPACE = UUID("6f1c8a3e-2b4d-4e8f-9a7c-1d2e3f405162")


def example_id(name: str) -> UUID:
    """A stable UUID for an example object, so generated files never change by themselves."""
    return uuid5(_NAMESPACE, name)


def _total(value: str, unit: Unit = Unit.M3) -> readings.RegisterValue:
    return readings.RegisterValue(register="total", value=Decimal(value), unit=unit)


def _meters() -> tuple[billing.AccountMeter, ...]:
    return (
        billing.AccountMeter(meter_id="WM-000012345678", utility=Utility.WATER),
        billing.AccountMeter(meter_id="EM-123456789012", utility=Utility.ELECTRICITY),
    )


def _readings() -> list[EventPayload]:
    validated: dict[str, Any] = dict(
        meter_id="WM-000012345678",
        utility=Utility.WATER,
        measured_at=AT,
        registers=(_total("102.40"),),
        consumption=Decimal("2.40"),
        consumption_unit=Unit.M3,
        previous_measured_at=AT - timedelta(days=1),
        source_event_id=example_id("ReadingReceived"),
    )
    return [
        ev.ReadingReceived(
            meter_id="WM-000012345678",
            utility=Utility.WATER,
            measured_at=AT,
            registers=(_total("102.40"),),
            source=ReadingSource.DTU,
            gateway_id="DTU-861234567890123",
            frame_hex="681078563412000000811690",
            received_at=AT + timedelta(seconds=3),
        ),
        ev.ReadingValidated(**validated, status=readings.ValidationStatus.ACTUAL,
                            estimation_method=None),
        ev.ReadingCorrected(
            **validated,
            status=readings.ValidationStatus.ESTIMATED,
            estimation_method=readings.EstimationMethod.REGISTER_SPREAD,
            reading_version=2,
            supersedes_event_id=example_id("ReadingValidated"),
            correction_reason=readings.CorrectionReason.RE_ESTIMATED,
        ),
    ]


def _devices() -> list[EventPayload]:
    return [
        ev.DeviceStatusReported(
            meter_id="WM-000012345678",
            utility=Utility.WATER,
            reported_at=AT,
            valve=ValveState.OPEN,
            relay=None,
            battery=devices.BatteryStatus(
                level=devices.BatteryLevel.LOW, voltage_v=Decimal("3.1"), remaining_percent=None
            ),
            alarms=(devices.DeviceAlarmFlag.MAGNETIC_TAMPER,),
            status_word_hex="0400",
            gateway_id="DTU-861234567890123",
        ),
        ev.FrameRejected(
            source=ReadingSource.DTU,
            source_id="DTU-861234567890123",
            meter_id=None,
            protocol=devices.FrameProtocol.CJT188,
            reason=devices.RejectionReason.CHECKSUM_MISMATCH,
            detail="checksum 08, computed 13",
            received_at=AT,
            raw_hex="681033782010000000008116901f00",
            raw_truncated=False,
        ),
    ]


def _alarms() -> list[EventPayload]:
    subject: dict[str, Any] = dict(
        alarm_id=example_id("leak"),
        alarm_type=alarms.AlarmType.CONTINUOUS_FLOW,
        subject=alarms.AlarmSubject.METER,
        subject_id="WM-000012345678",
    )
    return [
        ev.AlarmRaised(
            **subject,
            severity=alarms.AlarmSeverity.WARNING,
            utility=Utility.WATER,
            rule_id="leak-24h@2026-01-01",
            detected_at=AT,
            window_start=AT - timedelta(hours=24),
            window_end=AT,
            observed_value=Decimal("0.006"),
            threshold_value=Decimal("0.001"),
            value_unit=alarms.MeasureUnit.M3_PER_HOUR,
            description="flow in every hour of the last 24 h; lowest hour 6 L",
        ),
        ev.AlarmCleared(
            **subject,
            cleared_at=AT + timedelta(hours=3),
            reason=alarms.ClearReason.CONDITION_ENDED,
            cleared_by=None,
        ),
        ev.AlarmAcknowledged(
            **subject,
            acknowledged_at=AT + timedelta(hours=1),
            acknowledged_by="operator-7",
            note="crew sent to check the meter pit",
        ),
    ]


def _billing() -> list[EventPayload]:
    account: dict[str, Any] = dict(account_id="ACC-0001", currency="CNY")
    balance: dict[str, Any] = dict(**account, meters=_meters())
    tariff = "water-residential@2026-01-01"
    return [
        ev.ChargeApplied(  # billing.md R1: 5 m3 @ 5.00 + 5 m3 @ 7.00
            **account,
            kind=billing.ChargeKind.CONSUMPTION,
            meter_id="WM-000012345678",
            utility=Utility.WATER,
            reading_event_id=example_id("ReadingValidated"),
            period_start=AT - timedelta(days=1),
            period_end=AT,
            quantity=Decimal("10.00"),
            quantity_unit=Unit.M3,
            lines=(
                billing.ChargeLine(tariff_version_id=tariff, tier=1, register=None,
                                   quantity=Decimal("5.00"), unit_price=Decimal("5.00"),
                                   cost=Decimal("25.0000")),
                billing.ChargeLine(tariff_version_id=tariff, tier=2, register=None,
                                   quantity=Decimal("5.00"), unit_price=Decimal("7.00"),
                                   cost=Decimal("35.0000")),
            ),
            amount=Decimal("60.00"),
            tier_period_cost=Decimal("935.0000"),
        ),
        ev.PaymentReceived(**account, channel=billing.PaymentChannel.WECHAT_PAY,
                           provider_transaction_id="4200001234202607011234567890",
                           amount=Decimal("50.00"), paid_at=AT),
        ev.DailySettled(
            **account,
            settlement_date=date(2026, 7, 1),
            time_zone="Asia/Shanghai",
            opening_balance=Decimal("30.00"),
            charges_total=Decimal("60.00"),
            fixed_charges_total=Decimal("0.50"),
            payments_total=Decimal("50.00"),
            adjustments_total=Decimal("-5.00"),
            closing_balance=Decimal("14.50"),
            consumption=(billing.UtilityConsumption(utility=Utility.WATER,
                                                    quantity=Decimal("10.00"), unit=Unit.M3),),
        ),
        ev.RefundIssued(**account, reason=billing.RefundReason.MOVE_OUT, amount=Decimal("14.50"),
                        refunded_at=AT, operator_id=None),
        ev.SubsidyGranted(**account, batch_id="SUBSIDY-2026-07", line_number=17, amount=Decimal("30.00"),
                          reason="winter heating subsidy, low-income household", granted_at=AT),
        ev.AdjustmentPosted(  # billing.md R4: an estimate of 3 m3 replaced by an actual of 2 m3
            **account, reason=billing.AdjustmentReason.RE_RATED, amount=Decimal("-5.00"), posted_at=AT,
            meter_id="WM-000012345678", utility=Utility.WATER,
            correction_event_id=example_id("ReadingCorrected"), quantity=Decimal("-1.00"),
            quantity_unit=Unit.M3,
            lines=(billing.ChargeLine(tariff_version_id=tariff, tier=1, register=None, quantity=Decimal("2.00"),
                                      unit_price=Decimal("5.00"), cost=Decimal("10.0000")),),
            replaced_lines=(billing.ChargeLine(tariff_version_id=tariff, tier=1, register=None,
                                               quantity=Decimal("3.00"), unit_price=Decimal("5.00"),
                                               cost=Decimal("15.0000")),),
            counterpart_account_id=None, operator_id=None, note=None,
        ),
        ev.RecurringChargePosted(**account, tariff_id="water-residential", tariff_version_id=tariff,
                                 charge_name="property fee", month=date(2026, 7, 1),
                                 settlement_date=date(2026, 7, 1), amount=Decimal("35.00")),
        ev.BalanceLow(**account, balance=Decimal("22.00"), threshold=Decimal("24.00"),
                      average_daily_cost=Decimal("8.00"), entered_at=AT),  # billing.md B1
        ev.BalanceDepleted(**balance, balance=Decimal("-0.50"), credit_limit=Decimal("0"),
                           depleted_at=AT),  # billing.md B2
        ev.BalanceRestored(**balance, balance=Decimal("49.50"), restore_threshold=Decimal("0"),
                           restored_at=AT),  # billing.md B3
    ]


def _accounts() -> list[EventPayload]:
    account: dict[str, Any] = dict(account_id="ACC-0001")
    settings = accounts.AccountSettings(
        credit_limit=Decimal("0"), low_balance_amount=Decimal("20.00"), low_balance_days=3,
        restore_threshold=Decimal("0"), tier_size_factor=Decimal("1"), cut_off_policy_id="cut-electricity-only",
        exemptions=(accounts.ExemptionWindow(starts_at=AT, ends_at=AT + timedelta(days=30),
                                             reason="resident in hospital care"),),
    )
    link: dict[str, Any] = dict(**account, meter_id="WM-000012345678", utility=Utility.WATER)
    return [
        ev.AccountOpened(**account, customer_id="CUST-0001", customer_kind=accounts.CustomerKind.HOUSEHOLD,
                         currency="CNY", time_zone="Asia/Shanghai", billing_year_start=date(2026, 1, 1),
                         settings=settings, opened_at=AT),
        ev.AccountSettingsChanged(**account, settings=settings, changed_at=AT, changed_by="operator-7"),
        ev.AccountClosed(**account, reason=accounts.AccountCloseReason.MOVE_OUT, final_balance=Decimal("0"),
                         currency="CNY", closed_at=AT),
        ev.MeterLinkedToAccount(**link, tariff_id="water-residential", linked_at=AT,
                                reason=accounts.LinkReason.CONNECTED, previous_account_id=None),
        ev.MeterUnlinkedFromAccount(**link, unlinked_at=AT, reason=accounts.LinkReason.MOVE_OUT,
                                    next_account_id=None),
    ]


def _tariffs() -> list[EventPayload]:
    return [
        ev.TariffPublished(  # billing.md R1: annual water tiers of 180 / 260 m3
            tariff_id="water-residential", version_id="water-residential@2026-01-01", utility=Utility.WATER,
            unit=Unit.M3, currency="CNY", tier_period=tariffs.TierPeriod.CALENDAR_YEAR,
            effective_from=datetime(2026, 1, 1, tzinfo=CST),
            tiers=(tariffs.TariffTier(up_to=Decimal("180"), unit_price=Decimal("5.00")),
                   tariffs.TariffTier(up_to=Decimal("260"), unit_price=Decimal("7.00")),
                   tariffs.TariffTier(up_to=None, unit_price=Decimal("9.00"))),
            register_prices=(), fixed_daily_charge=Decimal("0.50"),
            recurring_charges=(tariffs.RecurringCharge(name="property fee", amount=Decimal("35.00")),),
            published_at=AT - timedelta(days=200), description="residential water, annual step tariff",
        )
    ]


def _commands() -> list[EventPayload]:
    relay: dict[str, Any] = dict(command_id=example_id("trip"), device_id="EM-123456789012")
    issued: dict[str, Any] = dict(**relay, reason=commands.CommandReason.BALANCE_DEPLETED,
                  requested_by="commands", account_id="ACC-0001", issued_at=AT,
                  not_before=None, expires_at=AT + timedelta(days=1))
    return [
        ev.ValveCommandIssued(**{**issued, "command_id": example_id("close"),
                                 "device_id": "WM-000012345678"},
                              action=commands.ValveAction.CLOSE),
        ev.RelayCommandIssued(**issued, action=commands.RelayAction.TRIP),
        ev.CommandAcknowledged(**relay, acknowledged_at=AT, attempt=1,
                               gateway_id="DTU-861234567890123", reported_valve_state=None,
                               reply_hex=None),
        ev.CommandConfirmed(**relay, confirmed_at=AT, valve_state=None,
                            relay_state=RelayState.DISCONNECTED,
                            read_back_event_id=example_id("DeviceStatusReported")),
        ev.CommandFailed(**relay, failed_at=AT, reason=commands.FailureReason.UNAUTHORIZED,
                         detail="abnormal reply DC, ERR 04: password wrong", attempts=3,
                         device_error_code=4),
        ev.CommandExpired(**relay, expired_at=AT + timedelta(days=1), attempts=5),
        ev.CommandRequested(**relay, kind=commands.CommandKind.RELAY_TRIP, parameter=None,
                            reason=commands.CommandReason.BALANCE_DEPLETED, origin=commands.CommandOrigin.POLICY,
                            requested_by="commands", note=None, rule_id="cut-electricity-not-water",
                            account_id="ACC-0001", operation_id=None, after_command_id=None, batch_id=None,
                            idempotency_key=None, priority=commands.CommandPriority.NORMAL, requested_at=AT,
                            not_before=AT + timedelta(hours=20), holds=(commands.ScheduleHold.QUIET_WINDOW,),
                            expires_at=AT + timedelta(days=3)),
        ev.CommandScheduled(**relay, attempt=1, scheduled_at=AT, send_at=AT + timedelta(hours=20),
                            holds=(commands.ScheduleHold.QUIET_WINDOW,)),
        ev.CommandDispatched(**relay, kind=commands.CommandKind.RELAY_TRIP, parameter=None, attempt=1,
                             dispatched_at=AT, expires_at=AT + timedelta(days=1)),
        ev.CommandCompleted(command_id=example_id("read"), device_id="WM-000012345678", completed_at=AT,
                            attempts=1),
        ev.CommandCancelled(**relay, cancelled_at=AT, cancelled_by="commands",
                            reason=commands.CancelReason.BALANCE_RESTORED,
                            detail="the balance was restored before it was sent", superseded_by=None),
        ev.CommandEscalated(**relay, kind=commands.CommandKind.RELAY_TRIP,
                            reason=commands.CommandReason.BALANCE_DEPLETED, account_id="ACC-0001",
                            outcome=commands.CommandOutcome.FAILED,
                            detail="acknowledged, but the device reported connected", escalated_at=AT),
        ev.CommandProposed(proposal_id=example_id("proposal"), rule_id="burst-ask", device_id="WM-000012345678",
                           kind=commands.CommandKind.VALVE_CLOSE, reason=commands.CommandReason.LEAK_PROTECTION,
                           priority=commands.CommandPriority.URGENT, cause_id=example_id("AlarmRaised"),
                           detail="rule burst-ask: burst alarm on WM-000012345678", proposed_at=AT,
                           expires_at=AT + timedelta(hours=2)),
    ]


def _notifications() -> list[EventPayload]:
    return [
        ev.NotificationSent(
            notification_id=example_id("sms"),
            recipient_id="CONTACT-0001",
            account_id="ACC-0001",
            channel=notifications.NotificationChannel.SMS,
            template=notifications.NotificationTemplate.BALANCE_LOW,
            language="zh-CN",
            destination_masked="138****5678",
            trigger_event_id=example_id("BalanceLow"),
            provider="aliyun-sms",
            provider_message_id="SMS-20260701-0001",
            sent_at=AT,
            attempt=1,
        )
    ]


def _meter_state(meter_id: str, **changes: Any) -> reg.MeterState:
    fields: dict[str, Any] = dict(
        meter_id=meter_id,
        utility=Utility.WATER,
        profile="cjt188-water-2004",
        bus_address="00000012345678",
        multiplier=Decimal("1"),
        dial_count=8,
        unit=Unit.M3,
        installation_date=date(2024, 3, 15),
        installation_reading=Decimal("0"),
        installed_at=None,
        premise="Building 3, Unit 2",
        room="1201",
        location=reg.GeoLocation(latitude=Decimal("30.572815"), longitude=Decimal("104.066801")),
        groups=reg.MeterGroups(building="B3", customer_type="residential", district_metered_area="DMA-07"),
        di_order=reg.DiByteOrder.DI_90_1F,
        schedule=reg.ReadSchedule(kind=reg.ScheduleKind.DAILY, at_local="01:00", jitter_s=1800),
        gateway_id="COL-0042",
        channel="1",
        status=reg.MeterStatus.ACTIVE,
        replaces_meter_id=None,
        removal=None,
    )
    return reg.MeterState(**{**fields, **changes})


def _registry() -> list[EventPayload]:
    tenant = "tenant-demo"
    swap = reg.MeterReplacement(new_meter_id="WM-000087654321", removed_at=AT,
                                removal_reading=Decimal("102.40"), installed_at=AT + timedelta(minutes=20),
                                installation_reading=Decimal("0.01"))
    removal = reg.MeterRemoval(removed_at=AT, removal_reading=Decimal("102.40"),
                               replaced_by_meter_id="WM-000087654321")
    return [
        ev.MeterDefined(device_key=reg.registry_key(tenant, reg.DeviceKind.METER, "WM-000012345678"),
                        revision=1, change=reg.RegistryChange.REGISTERED, meter=_meter_state("WM-000012345678")),
        ev.MeterReplaced(
            device_key=reg.registry_key(tenant, reg.DeviceKind.METER, "WM-000012345678"), revision=2,
            meter=_meter_state("WM-000012345678", status=reg.MeterStatus.REMOVED, removal=removal),
            replacement=swap,
        ),
        ev.GatewayDefined(
            device_key=reg.registry_key(tenant, reg.DeviceKind.GATEWAY, "COL-0042"), revision=3,
            change=reg.RegistryChange.UPDATED,
            gateway=reg.GatewayState(gateway_id="COL-0042", kind=reg.GatewayKind.COLLECTOR, registration_id=None,
                                     model="KD-C485", firmware="2.1.7", parent_gateway_id="DTU-861234567890123",
                                     channel="RS485-1", maintenance=reg.MaintenanceState.IN_SERVICE),
        ),
        ev.SimCardDefined(
            device_key=reg.registry_key(tenant, reg.DeviceKind.SIM_CARD, "89860412345678901234"), revision=2,
            change=reg.RegistryChange.UPDATED, changed=(reg.SimCardAspect.CARD,),
            sim_card=reg.SimCardState(iccid="89860412345678901234", imsi="460041234567890",
                                      msisdn="1064812345678", carrier="China Mobile", data_plan="IoT 30 MB",
                                      quota_bytes=31_457_280, used_bytes=1_048_576,
                                      expires_on=date(2027, 6, 30), gateway_id="DTU-861234567890123"),
        ),
    ]


def _audit() -> list[EventPayload]:
    record_id, chain_id = example_id("audit-record"), example_id("audit-chain")
    record = json.dumps({
        "at": "2026-07-01T04:00:00.000000+00:00", "chain": str(chain_id), "id": str(record_id), "kind": "attempt",
        "objects": ["EM-123456789012"], "seq": 42, "service": "commands", "tenant": "tenant-demo", "v": 1,
        "what": {"method": "POST", "path": "/v1/commands", "route": "/v1/commands"},
        "where": {"address": "10.20.0.7", "peer": "10.20.0.7", "user_agent": "curl/8.5.0"},
        "who": {"home_tenant": "tenant-demo", "roles": ["operator"], "subject": "op-7", "tenant": "tenant-demo",
                "token_id": "4f1c"},
        "why": "tampering reported"}, sort_keys=True, separators=(",", ":"))
    prev_hash = hashlib.sha256(b"example").hexdigest()
    return [
        ev.AuditRecorded(service="commands", chain_id=chain_id, seq=42, record_id=record_id,
                         tenant_id="tenant-demo", kind=audit.AuditRecordKind.ATTEMPT, recorded_at=AT, record=record,
                         prev_hash=prev_hash, record_hash=hashlib.sha256((prev_hash + record).encode()).hexdigest()),
    ]


def example_payloads() -> dict[str, EventPayload]:
    """An example payload of every current event type, by event type."""
    built = [*_readings(), *_devices(), *_alarms(), *_billing(), *_accounts(), *_tariffs(), *_commands(),
             *_notifications(), *_registry(), *_audit()]
    by_type = {payload.EVENT_TYPE: payload for payload in built}
    return {name: by_type[name] for name in EVENT_TYPES if name in by_type}


def example_envelope(payload: EventPayload, tenant_id: str = "tenant-demo") -> Envelope[EventPayload]:
    """``payload`` in an envelope keyed as its topic says, with stable ids and times."""
    topic = topic_for_event(payload.EVENT_TYPE)
    return new_envelope(
        payload,
        event_id=example_id(payload.EVENT_TYPE),
        tenant_id=tenant_id,
        key=str(getattr(payload, topic.key)),
        occurred_at=AT,
        recorded_at=AT + timedelta(seconds=2),
        # The audit topic is written by every service; its records name the one that wrote them.
        producer=str(getattr(payload, "service", topic.producer)),
        causation_id=None,
    )
