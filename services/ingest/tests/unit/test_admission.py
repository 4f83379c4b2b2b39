"""Who may talk to the DTU gateway: socket limits, the login verdict against the registry, a held link's
standing when the registry changes, the refusal report budget and the allowance for bytes without a frame."""

from __future__ import annotations

from dataclasses import replace

import pytest
from amiflow_schemas.events.registry import GatewayKind, MaintenanceState
from ingest.core.admission import (
    Admitted,
    ConnectionLimits,
    LoginPolicy,
    NoiseBudget,
    Refusal,
    Refused,
    ReportBudget,
    judge_connection,
    judge_login,
    judge_standing,
)
from ingest.core.dtu_login import LoginFormat, parse_login
from ingest.core.registry import Gateway, GatewayDetails

LIMITS = ConnectionLimits(per_address=3, total=10, pending_logins=5)
STRICT = LoginPolicy(accept_unregistered=False, unassigned_tenant="platform")
COMMISSIONING = LoginPolicy(accept_unregistered=True, unassigned_tenant="platform")
DDP_REGISTER = bytes.fromhex("7B 01 00 16 31 33 39 31 32 33 34 35 36 37 38 0A 01 02 03 13 8A 7B")  # §1's example
DTU = Gateway("market", "DTU-1", GatewayDetails(GatewayKind.DTU, "861234567890123"))


def retired(gateway: Gateway) -> Gateway:
    return replace(gateway, details=replace(gateway.details, maintenance=MaintenanceState.RETIRED))


@pytest.mark.parametrize(("from_address", "total", "pending", "expected"), [
    (0, 0, 0, None),
    (2, 9, 4, None),
    (3, 5, 0, Refusal.TOO_MANY_FROM_ADDRESS),
    (0, 10, 0, Refusal.GATEWAY_FULL),
    (0, 6, 5, Refusal.TOO_MANY_PENDING),
    (3, 10, 5, Refusal.GATEWAY_FULL),  # the process-wide cap is said first: it is what an operator must raise
])
def test_a_socket_is_accepted_only_within_every_limit(from_address: int, total: int, pending: int,
                                                      expected: Refusal | None) -> None:
    assert judge_connection(LIMITS, from_address=from_address, total=total, pending=pending) is expected


def test_a_registered_dtu_may_talk_as_its_gateway() -> None:
    assert judge_login("861234567890123", DTU, STRICT) == Admitted(DTU)


def test_a_gateway_in_maintenance_may_still_talk() -> None:
    resting = replace(DTU, details=replace(DTU.details, maintenance=MaintenanceState.MAINTENANCE))
    assert judge_login("861234567890123", resting, STRICT) == Admitted(resting)


def test_an_id_the_registry_does_not_know_is_refused() -> None:
    verdict = judge_login("869999999999999", None, STRICT)
    assert isinstance(verdict, Refused) and verdict.reason is Refusal.UNREGISTERED
    assert "869999999999999" in verdict.detail


def test_a_retired_gateway_is_refused_even_while_commissioning_is_on() -> None:
    for policy in (STRICT, COMMISSIONING):
        verdict = judge_login("861234567890123", retired(DTU), policy)
        assert isinstance(verdict, Refused) and verdict.reason is Refusal.RETIRED
        assert "DTU-1" in verdict.detail and "market" in verdict.detail


def test_commissioning_holds_an_unknown_id_under_the_unassigned_tenant_with_a_prefixed_id() -> None:
    verdict = judge_login("0200-04660", None, COMMISSIONING, GatewayKind.CONCENTRATOR)
    assert isinstance(verdict, Admitted) and verdict.commissioning
    assert (verdict.gateway.tenant_id, verdict.gateway.gateway_id) == ("platform", "unregistered-0200-04660")
    assert verdict.gateway.details == GatewayDetails(GatewayKind.CONCENTRATOR, "0200-04660")


def test_a_held_link_stays_while_its_record_is_unchanged() -> None:
    assert judge_standing(Admitted(DTU), DTU, STRICT) is None


@pytest.mark.parametrize("now", [None, retired(DTU)], ids=["removed", "retired"])
def test_a_held_link_must_close_when_its_gateway_is_withdrawn(now: Gateway | None) -> None:
    assert judge_standing(Admitted(DTU), now, STRICT) is not None


def test_a_link_held_for_commissioning_closes_once_its_id_is_registered() -> None:
    held = judge_login("861234567890123", None, COMMISSIONING)
    assert isinstance(held, Admitted)
    assert judge_standing(held, None, COMMISSIONING) is None
    why = judge_standing(held, DTU, COMMISSIONING)
    assert why is not None and "DTU-1" in why


def test_a_link_held_for_commissioning_closes_when_commissioning_is_turned_off() -> None:
    held = judge_login("861234567890123", None, COMMISSIONING)
    assert isinstance(held, Admitted)
    assert judge_standing(held, None, STRICT) is not None


def test_reports_past_the_budget_are_held_back_and_told_with_the_next_minute_s_first() -> None:
    budget = ReportBudget(per_minute=2)
    assert [budget.admit("unregistered", t) for t in (0.0, 1.0, 2.0, 3.0)] == [0, 0, None, None]
    assert budget.admit("retired", 4.0) == 0  # each reason has its own budget
    assert budget.admit("unregistered", 60.5) == 2
    assert budget.admit("unregistered", 61.0) == 0


def test_bytes_without_a_frame_run_out_past_the_limit_and_a_valid_frame_refills_them() -> None:
    noise = NoiseBudget(limit=100)
    assert not noise.spend(60)
    assert not noise.spend(40)
    noise.frame()
    assert not noise.spend(100)
    assert noise.spend(1)


@pytest.mark.parametrize(("fmt", "wire", "packet"), [
    (LoginFormat.ASCII_ID, b"REG-0001\r\n\x68", b"REG-0001"),
    (LoginFormat.DDP, DDP_REGISTER + b"\x68", DDP_REGISTER),
    (LoginFormat.MAC, bytes.fromhex("9CA525CD00DB68"), bytes.fromhex("9CA525CD00DB")),
])
def test_a_login_keeps_its_packet_for_the_refusal_record(fmt: LoginFormat, wire: bytes, packet: bytes) -> None:
    assert parse_login(fmt, wire).packet == packet
