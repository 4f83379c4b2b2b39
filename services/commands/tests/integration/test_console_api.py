"""The operator console and the configuration API on both databases: who and why recorded, bad input refused
with a reason, latest intent wins, and every decision staged in the outbox for Kafka in its transaction."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from amiflow_schemas.events.commands import CommandKind, CommandPriority, CommandProposed, CommandReason
from commands.adapters import store

pytestmark = pytest.mark.integration

DOWNLINK = ["CommandRequested", "CommandScheduled", "CommandDispatched"]


def order(device_id: str, kind: str, **changes: Any) -> dict[str, Any]:
    """A console command by operator op-7, with a reason."""
    return {"device_id": device_id, "kind": kind, "requested_by": "op-7",
            "note": "customer reported tampering; cut supply until inspection", **changes}


async def test_a_console_relay_trip_is_sent_at_once_and_records_who_and_why(console: Any) -> None:
    answer = await console.post("/v1/commands", order(console.POWER.device_id, "relay_trip"))

    assert answer.status_code == 201, answer.text
    command = answer.json()
    assert command["state"] == "dispatched"
    assert command["origin"] == "operator" and command["reason"] == "operator"
    assert command["requested_by"] == "op-7" and command["note"].startswith("customer reported tampering")
    assert await console.staged_for(command["command_id"]) == [*DOWNLINK, "RelayCommandIssued"]
    [issued] = await console.staged("RelayCommandIssued")
    assert issued.payload.action == "trip" and issued.payload.requested_by == "op-7"
    assert issued.key == console.POWER.device_id and issued.tenant_id == console.TENANT

    detail = await console.get(f"/v1/commands/{command['command_id']}")
    assert detail.status_code == 200
    assert [h["event_type"] for h in detail.json()["history"]] == [*DOWNLINK, "RelayCommandIssued"]
    assert detail.json()["history"][0]["payload"]["note"] == command["note"]


async def test_an_unknown_device_a_kind_it_cannot_do_and_a_removed_device_are_refused_with_reasons(
        console: Any) -> None:
    unknown = await console.post("/v1/commands", order("EM-0000", "relay_trip"))
    unsupported = await console.post("/v1/commands", order(console.POWER.device_id, "valve_close"))
    removed = await console.post("/v1/commands", order(console.REMOVED.device_id, "relay_trip"))
    no_note = await console.post("/v1/commands", {**order(console.POWER.device_id, "relay_trip"), "note": None})

    assert unknown.status_code == 404 and unknown.json()["detail"]["problem"] == "unknown_device"
    assert "EM-0000" in unknown.json()["detail"]["reason"]
    assert unsupported.status_code == 422 and unsupported.json()["detail"]["problem"] == "kind_not_supported"
    assert "relay_trip" in unsupported.json()["detail"]["reason"]  # what the meter can do instead
    assert removed.status_code == 422 and removed.json()["detail"]["problem"] == "device_removed"
    assert no_note.status_code == 422  # an operator's command says why
    assert await console.staged() == []


async def test_a_window_that_has_already_passed_is_refused(console: Any) -> None:
    past = (console.now - timedelta(minutes=1)).isoformat()
    answer = await console.post("/v1/commands", order(console.POWER.device_id, "relay_trip", expires_at=past))

    assert answer.status_code == 422
    assert answer.json()["detail"]["problem"] == "window_passed"
    assert await console.staged() == []


async def test_the_same_idempotency_key_answers_the_first_command_and_stages_nothing_new(console: Any) -> None:
    first = await console.post("/v1/commands", order(console.WATER.device_id, "valve_close", idempotency_key="k-1"))
    staged = len(await console.staged())
    console.at(console.now + timedelta(minutes=3))
    again = await console.post("/v1/commands", order(console.WATER.device_id, "valve_close", idempotency_key="k-1"))

    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["command_id"] == first.json()["command_id"] and again.json()["duplicate"] is True
    assert len(await console.staged()) == staged


async def test_a_contradicting_command_supersedes_one_not_yet_sent(console: Any) -> None:
    later = (console.now + timedelta(hours=1)).isoformat()
    close = (await console.post("/v1/commands", order(console.WATER.device_id, "valve_close",
                                                        not_before=later))).json()
    assert close["state"] == "scheduled" and close["holds"] == ["not_before"]

    opened = await console.post("/v1/commands", order(console.WATER.device_id, "valve_open",
                                                      note="inspection done, supply back"))

    assert opened.status_code == 201 and opened.json()["state"] == "dispatched"
    assert opened.json()["superseded"] == [close["command_id"]]
    closed = (await console.get(f"/v1/commands/{close['command_id']}")).json()
    assert closed["state"] == "cancelled"
    cancelled = closed["history"][-1]
    assert cancelled["event_type"] == "CommandCancelled"
    assert cancelled["payload"]["reason"] == "superseded"
    assert cancelled["payload"]["superseded_by"] == opened.json()["command_id"]
    open_now = (await console.get("/v1/commands", params={"device_id": console.WATER.device_id,
                                                          "state": "dispatched"})).json()
    assert [c["command_id"] for c in open_now] == [opened.json()["command_id"]]


async def test_a_sent_command_cannot_be_cancelled_but_a_scheduled_one_can(console: Any) -> None:
    sent = (await console.post("/v1/commands", order(console.POWER.device_id, "relay_trip"))).json()
    held = (await console.post("/v1/commands", order(
        console.WATER.device_id, "valve_close", not_before=(console.now + timedelta(hours=1)).isoformat()))).json()
    why = {"cancelled_by": "op-9", "reason": "customer paid at the counter"}

    refused = await console.post(f"/v1/commands/{sent['command_id']}/cancel", why)
    cancelled = await console.post(f"/v1/commands/{held['command_id']}/cancel", why)
    twice = await console.post(f"/v1/commands/{held['command_id']}/cancel", why)
    unknown = await console.post(f"/v1/commands/{uuid.uuid4()}/cancel", why)

    assert refused.status_code == 409 and refused.json()["detail"]["problem"] == "not_cancellable"
    assert "cannot be called back" in refused.json()["detail"]["reason"]
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert twice.status_code == 409 and unknown.status_code == 404
    [event] = await console.staged("CommandCancelled")
    assert event.payload.cancelled_by == "op-9" and event.payload.reason == "operator"
    assert event.payload.detail == "customer paid at the counter"


async def test_commands_are_found_by_device_state_and_time(console: Any) -> None:
    first = (await console.post("/v1/commands", order(console.POWER.device_id, "read_now"))).json()
    console.at(console.now + timedelta(hours=1))
    second = (await console.post("/v1/commands", order(console.POWER_2.device_id, "time_sync"))).json()

    everything = (await console.get("/v1/commands")).json()
    of_device = (await console.get("/v1/commands", params={"device_id": console.POWER.device_id})).json()
    earlier = (await console.get("/v1/commands", params={"to": console.now.isoformat()})).json()
    empty = await console.get("/v1/commands", params={"from": console.now.isoformat(),
                                                      "to": console.now.isoformat()})
    unknown = await console.get(f"/v1/commands/{uuid.uuid4()}")

    assert [c["command_id"] for c in everything] == [second["command_id"], first["command_id"]]  # newest first
    assert [c["command_id"] for c in of_device] == [first["command_id"]]
    assert [c["command_id"] for c in earlier] == [first["command_id"]]
    assert empty.status_code == 422 and unknown.status_code == 404


async def test_a_batch_is_answered_line_by_line_and_again_as_duplicates(console: Any) -> None:
    batch = {"batch_id": "B-2026-07", "requested_by": "op-7", "note": "arrears campaign", "kind": "relay_trip",
             "device_ids": [console.POWER.device_id, "EM-0000", console.POWER_2.device_id]}

    first = await console.post("/v1/commands/batch", batch)
    again = await console.post("/v1/commands/batch", batch)

    assert first.status_code == 200, first.text
    lines = first.json()["lines"]
    assert [line["status"] for line in lines] == ["accepted", "refused", "accepted"]
    assert lines[1]["problem"] == "unknown_device" and "EM-0000" in lines[1]["reason"]
    assert lines[0]["command"]["batch_id"] == "B-2026-07"
    assert lines[0]["command"]["idempotency_key"] == f"batch:B-2026-07:{console.POWER.device_id}"
    assert (first.json()["accepted"], first.json()["refused"]) == (2, 1)
    assert [line["status"] for line in again.json()["lines"]] == ["duplicate", "refused", "duplicate"]
    assert [line["command"]["command_id"] for line in again.json()["lines"] if line["command"]] == [
        lines[0]["command"]["command_id"], lines[2]["command"]["command_id"]]
    assert len(await console.staged("RelayCommandIssued")) == 2
    in_batch = (await console.get("/v1/commands", params={"batch_id": "B-2026-07"})).json()
    assert len(in_batch) == 2


async def test_a_batch_naming_a_device_twice_or_no_kind_is_refused_whole(console: Any) -> None:
    base = {"batch_id": "B-1", "requested_by": "op-7", "note": "campaign"}
    twice = await console.post("/v1/commands/batch", {**base, "kind": "read_now",
                                                      "device_ids": [console.POWER.device_id] * 2})
    no_kind = await console.post("/v1/commands/batch", {**base, "lines": [{"device_id": console.POWER.device_id}]})

    assert twice.status_code == 422 and no_kind.status_code == 422
    assert await console.staged() == []


async def test_the_cut_off_policy_is_the_default_until_set_and_a_bad_one_is_refused(console: Any) -> None:
    default = (await console.get("/v1/cut-off-policy")).json()
    policy = {"policy_id": "cut-power-not-water", "cut_utilities": ["electricity"], "quiet_weekdays": ["sat", "sun"],
              "quiet_windows": [{"start": "18:00", "end": "08:00"}], "holidays": ["2026-10-01"],
              "updated_by": "admin-1"}

    put = await console.put("/v1/cut-off-policy", policy)
    read = (await console.get("/v1/cut-off-policy")).json()
    bad_restore = await console.put("/v1/cut-off-policy", {**policy, "relay_restore": "relay_trip"})
    never = await console.put("/v1/cut-off-policy", {**policy, "quiet_weekdays": ["mon", "tue", "wed", "thu", "fri",
                                                                                  "sat", "sun"]})
    unknown_key = await console.put("/v1/cut-off-policy", {**policy, "cut_water": False})

    assert default["default"] is True and default["updated_by"] is None
    assert put.status_code == 200, put.text
    assert read["default"] is False and read["updated_by"] == "admin-1"
    assert read["policy"]["policy_id"] == "cut-power-not-water" and read["policy"]["cut_utilities"] == ["electricity"]
    assert bad_restore.status_code == 422
    assert never.status_code == 422 and never.json()["detail"]["problem"] == "no_cut_off_allowed"
    assert unknown_key.status_code == 422
    assert (await console.get("/v1/cut-off-policy")).json()["policy"]["policy_id"] == "cut-power-not-water"


async def test_an_exemption_is_set_read_and_removed(console: Any) -> None:
    path = "/v1/exemptions/ACC-1"
    put = await console.put(path, {"until": "2026-09-30", "reason": "home dialysis", "updated_by": "admin-1"})
    read = await console.get(path)
    past = await console.put(path, {"until": "2026-07-14", "reason": "late", "updated_by": "admin-1"})
    removed = await console.delete(path)

    assert put.status_code == 200, put.text
    assert read.json() == {"account_id": "ACC-1", "until": "2026-09-30", "reason": "home dialysis",
                           "updated_by": "admin-1", "updated_at": read.json()["updated_at"]}
    assert past.status_code == 422 and past.json()["detail"]["problem"] == "until_passed"
    assert removed.status_code == 204
    assert (await console.get(path)).status_code == 404 and (await console.delete(path)).status_code == 404


async def test_automation_rules_are_kept_per_tenant_and_a_rule_cannot_write_parameters(console: Any) -> None:
    rule = {"rule_id": "burst-close", "trigger": {"type": "alarm", "alarm_type": "burst", "min_severity": "warning"},
            "action": "valve_close", "mode": "propose", "reason": "leak_protection", "updated_by": "admin-1"}

    put = await console.put("/v1/automation-rules/burst-close", rule)
    listed = (await console.get("/v1/automation-rules")).json()
    mismatch = await console.put("/v1/automation-rules/other", rule)
    parameter = await console.put("/v1/automation-rules/burst-close", {**rule, "action": "set_parameter"})

    assert put.status_code == 200, put.text
    assert [(r["rule"]["rule_id"], r["rule"]["mode"], r["updated_by"]) for r in listed] == [
        ("burst-close", "propose", "admin-1")]
    assert mismatch.status_code == 422 and parameter.status_code == 422


async def test_a_proposal_accepted_twice_requests_one_command_naming_rule_and_operator(console: Any) -> None:
    proposal = CommandProposed(
        proposal_id=uuid.uuid4(), rule_id="burst-close", device_id=console.WATER.device_id,
        kind=CommandKind.VALVE_CLOSE, reason=CommandReason.LEAK_PROTECTION, priority=CommandPriority.URGENT,
        cause_id=uuid.uuid4(), detail="rule burst-close: burst alarm (major) on WM-2001", proposed_at=console.now,
        expires_at=console.now + timedelta(hours=2))
    async with console.runtime.sessions() as session, session.begin():
        await store.propose(session, console.TENANT, proposal)
    listed = (await console.get("/v1/proposals")).json()
    acceptance = {"operator_id": "op-7", "why": "neighbour reports water in the stairwell"}

    first = await console.post(f"/v1/proposals/{proposal.proposal_id}/accept", acceptance)
    console.at(proposal.expires_at + timedelta(minutes=1))  # lapsed since; the acceptance still answers
    again = await console.post(f"/v1/proposals/{proposal.proposal_id}/accept", acceptance)

    assert [p["proposal_id"] for p in listed] == [str(proposal.proposal_id)]
    assert first.status_code == 201, first.text
    command = first.json()
    assert (command["rule_id"], command["requested_by"], command["origin"]) == ("burst-close", "op-7", "automation")
    assert again.status_code == 200 and again.json()["command_id"] == command["command_id"]
    assert len(await console.staged("CommandRequested")) == 1
    assert (await console.get("/v1/proposals")).json() == []
    assert (await console.post(f"/v1/proposals/{uuid.uuid4()}/accept", acceptance)).status_code == 404


async def test_a_lapsed_proposal_is_refused(console: Any) -> None:
    proposal = CommandProposed(
        proposal_id=uuid.uuid4(), rule_id="burst-close", device_id=console.WATER.device_id,
        kind=CommandKind.VALVE_CLOSE, reason=CommandReason.LEAK_PROTECTION, priority=CommandPriority.URGENT,
        cause_id=uuid.uuid4(), detail="burst", proposed_at=console.now, expires_at=console.now + timedelta(hours=2))
    async with console.runtime.sessions() as session, session.begin():
        await store.propose(session, console.TENANT, proposal)
    console.at(proposal.expires_at)

    answer = await console.post(f"/v1/proposals/{proposal.proposal_id}/accept", {"operator_id": "op-7", "why": "x"})

    assert answer.status_code == 409 and answer.json()["detail"]["problem"] == "proposal_expired"
    assert await console.staged() == []


async def test_move_out_reads_each_meter_then_cuts_it_off_after_the_read(console: Any) -> None:
    body = {"account_id": "ACC-1", "device_ids": [console.POWER.device_id, console.WATER.device_id],
            "requested_by": "op-7", "note": "tenant leaves on 15 July", "idempotency_key": "move-out-ACC-1"}

    answer = await console.post("/v1/operations/move-out", body)
    again = await console.post("/v1/operations/move-out", body)

    assert answer.status_code == 201, answer.text
    steps = answer.json()["commands"]
    assert [(s["device_id"], s["kind"], s["state"]) for s in steps] == [
        (console.POWER.device_id, "read_now", "dispatched"), (console.POWER.device_id, "relay_trip", "requested"),
        (console.WATER.device_id, "read_now", "dispatched"), (console.WATER.device_id, "valve_close", "requested")]
    assert steps[1]["after_command_id"] == steps[0]["command_id"]
    assert steps[3]["after_command_id"] == steps[2]["command_id"]
    assert {s["operation_id"] for s in steps} == {answer.json()["operation_id"]}
    assert all(s["account_id"] == "ACC-1" and s["origin"] == "service_operation" for s in steps)
    assert answer.json()["skipped"] == [] and answer.json()["refused"] == []
    assert await console.staged("RelayCommandIssued", "ValveCommandIssued") == []  # the cut-offs wait for the reads
    assert again.status_code == 200
    assert [s["command_id"] for s in again.json()["commands"]] == [s["command_id"] for s in steps]


async def test_operations_refuse_unknown_devices_and_skip_what_a_meter_cannot_do(console: Any) -> None:
    who = {"requested_by": "op-7", "note": "routine"}
    unknown = await console.post("/v1/operations/move-out", {**who, "account_id": "ACC-1",
                                                             "device_ids": [console.POWER.device_id, "EM-0000"]})
    download = await console.post("/v1/operations/parameter-download", {
        **who, "device_ids": [console.POWER.device_id], "parameter": {"name": "report_period", "value": "60"}})
    swap = await console.post("/v1/operations/meter-replacement", {
        **who, "old_device_id": console.POWER.device_id, "new_device_id": console.POWER_2.device_id})
    opened = await console.post("/v1/operations/account-opened", {**who, "account_id": "ACC-2",
                                                                  "device_ids": [console.POWER_2.device_id]})

    assert unknown.status_code == 404 and "EM-0000" in unknown.json()["detail"]["reason"]
    assert download.status_code == 200 and download.json()["commands"] == []
    assert download.json()["skipped"] == [{"device_id": console.POWER.device_id,
                                           "reason": "its profile states no parameter writes"}]
    old_read, new_read = swap.json()["commands"]
    assert new_read["after_command_id"] == old_read["command_id"] and new_read["state"] == "requested"
    assert opened.status_code == 201 and opened.json()["commands"][0]["kind"] == "relay_close_allowed"
