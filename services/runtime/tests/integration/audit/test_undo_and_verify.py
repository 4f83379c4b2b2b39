"""Undo by a compensating action, audited like any other; and verify finding a DBA's edits and deletions on
SQLite and PostgreSQL, through the API and the command line."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from amiflow_runtime.audit_cli import audit_command
from amiflow_runtime.config import ServiceSettings

from .conftest import ThingsService

pytestmark = pytest.mark.integration


async def _put(service: ThingsService, thing_id: str, colour: str, subject: str = "op-7") -> dict[str, Any]:
    answer = await service.http.put(f"/v1/things/{thing_id}", headers=service.as_(subject), json={"colour": colour})
    assert answer.status_code == 200, answer.text
    return (await service.entries(action="PUT /v1/things/{thing_id}"))[-1]


async def _undo(service: ThingsService, record_id: str, subject: str = "op-7",
                roles: tuple[str, ...] = ("operator",)) -> Any:
    return await service.http.post(f"/v1/audit/{record_id}/undo", json={"reason": "wrong thing"},
                                   headers=service.as_(subject, roles))


async def test_undoing_ones_own_change_puts_the_thing_back_and_is_audited(things_service: ThingsService) -> None:
    await _put(things_service, "T-1", "red")
    blue = await _put(things_service, "T-1", "blue")

    answer = await _undo(things_service, blue["id"])
    assert answer.status_code == 200, answer.text
    assert (answer.json()["method"], answer.json()["path"], answer.json()["status"]) == ("PUT", "/v1/things/T-1", 200)
    assert things_service.things[("riverside", "T-1")]["colour"] == "red"

    entries = {e["id"]: e for e in await things_service.entries()}
    compensation = entries[answer.json()["compensation"]]
    assert compensation["undoes"] == blue["id"] and compensation["who"]["subject"] == "op-7"
    assert compensation["why"] == "wrong thing" and compensation["what"]["body"]["json"]["colour"] == "red"
    undone = entries[blue["id"]]["undo"]
    assert (undone["state"], undone["compensation"], undone["who"]) == ("done", compensation["id"], "op-7")
    assert [e["what"]["route"] for e in await things_service.entries(outcome="undone")] == ["/v1/things/{thing_id}"]
    report = (await things_service.http.get("/v1/audit/verify", headers=things_service.auditor())).json()
    assert report["intact"] and report["problems"] == []


async def test_undoing_a_creation_deletes_what_it_created(things_service: ThingsService) -> None:
    await things_service.http.post("/v1/things", headers=things_service.as_(), json={"colour": "green"})
    [created] = await things_service.entries(action="POST /v1/things")
    assert (await _undo(things_service, created["id"])).status_code == 200
    assert things_service.things == {}


async def test_an_action_is_undone_only_once(things_service: ThingsService) -> None:
    blue = await _put(things_service, "T-1", "blue")
    assert (await _undo(things_service, blue["id"])).status_code == 200
    again = await _undo(things_service, blue["id"])
    assert (again.status_code, again.json()["detail"]["problem"]) == (409, "already_undone")


async def test_someone_elses_action_is_not_theirs_to_undo_but_a_tenant_admins(things_service: ThingsService) -> None:
    blue = await _put(things_service, "T-1", "blue", subject="op-8")
    refused = await _undo(things_service, blue["id"], "op-7")
    assert (refused.status_code, refused.json()["detail"]["problem"]) == (403, "not_your_action")
    assert ("riverside", "T-1") in things_service.things
    assert (await _undo(things_service, blue["id"], "boss", ("tenant_admin",))).status_code == 200
    assert ("riverside", "T-1") not in things_service.things  # it did not exist before op-8's PUT


async def test_a_compensation_the_service_refuses_is_recorded_and_may_be_retried(things_service: ThingsService) -> None:
    await things_service.http.post("/v1/things", headers=things_service.as_(), json={"colour": "green"})
    [created] = await things_service.entries(action="POST /v1/things")
    things_service.things.clear()  # gone meanwhile: the DELETE will answer 404
    failed = await _undo(things_service, created["id"])
    assert (failed.status_code, failed.json()["detail"]["problem"]) == (409, "compensation_refused")
    [entry] = await things_service.entries(action="POST /v1/things")
    assert (entry["undo"]["state"], entry["undo"]["status"]) == ("failed", 404)
    things_service.things[("riverside", created["outcome"]["ids"]["thing_id"][0])] = {"colour": "green"}
    assert (await _undo(things_service, created["id"])).status_code == 200


async def test_what_the_service_declares_final_says_why(things_service: ThingsService) -> None:
    await _put(things_service, "T-1", "red")
    await things_service.http.delete("/v1/things/T-1", headers=things_service.as_())
    [deleted] = await things_service.entries(action="DELETE /v1/things/{thing_id}")
    answer = await _undo(things_service, deleted["id"])
    assert answer.json()["detail"] == {"problem": "cannot_undo", "reason": "a deleted thing is gone"}


async def test_an_auditor_cannot_undo(things_service: ThingsService) -> None:
    blue = await _put(things_service, "T-1", "blue")
    assert (await _undo(things_service, blue["id"], "aud-1", ("auditor",))).status_code == 403


def _verify_lines(service: ThingsService, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = audit_command(["verify"], lambda: ServiceSettings(database_url=service.database_url))
    return code, capsys.readouterr().out.splitlines()


async def _tamper(service: ThingsService) -> None:
    # What a DBA could do: take the guard off, edit, delete.
    if service.database_url.startswith("postgresql"):
        await service.sql("DROP TRIGGER audit_records_append_only ON audit_records")
    else:
        await service.sql("DROP TRIGGER audit_records_no_update")
        await service.sql("DROP TRIGGER audit_records_no_delete")
    await service.sql("UPDATE audit_records SET record = replace(record, '\"red\"', '\"pink\"') WHERE seq = 1")
    await service.sql("DELETE FROM audit_records WHERE seq = 4")
    await service.sql("UPDATE audit_records SET actor = 'nobody' WHERE seq = 5")


async def test_verify_finds_an_edited_a_deleted_and_a_relabelled_record(
        things_service: ThingsService, capsys: pytest.CaptureFixture[str]) -> None:
    for colour in ("red", "blue", "green"):
        await _put(things_service, "T-1", colour)
    assert (await things_service.http.get("/v1/audit/verify", headers=things_service.auditor())).json()["intact"]
    code, lines = await _run_sync(_verify_lines, things_service, capsys)
    assert code == 0 and lines[0].startswith("amiflow: intact: 6 records")

    await _tamper(things_service)
    report = (await things_service.http.get("/v1/audit/verify", headers=things_service.auditor())).json()
    assert not report["intact"]
    assert [(p["seq"], p["what"].split(":")[0]) for p in report["problems"]] == [
        (1, "hash mismatch"), (5, "gap in sequence numbers"), (5, "broken link"),
        (5, "column(s) actor disagree with the hashed record")]
    code, lines = await _run_sync(_verify_lines, things_service, capsys)
    assert code == 1
    assert lines[0] == "amiflow: BROKEN: 4 problem(s) in 5 records"
    assert "amiflow: seq 1: hash mismatch: the record is not what was hashed (altered)" in lines
    assert "amiflow: seq 5: gap in sequence numbers: 4 missing before it" in lines


async def _run_sync(function: Any, *args: Any) -> Any:
    # audit_command runs its own event loop, as it does in a process of its own.
    return await asyncio.to_thread(function, *args)
