"""The audit trail at the HTTP edge on SQLite and PostgreSQL: every state-changing call recorded with who, when,
where, why and its outcome; refusals as security events; a dying request leaves "outcome unknown"; the
auditors' query API with its filters, paging and tenant walls; each record anchored in the outbox."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from amiflow_schemas import decode_event
from sqlalchemy import select

from .conftest import NOW, OUTBOX, PROXY, ThingsService

pytestmark = pytest.mark.integration


async def test_an_operator_action_is_recorded_with_who_when_where_why_and_outcome(
        things_service: ThingsService) -> None:
    headers = things_service.as_(**{"X-Amiflow-Reason": "ticket%204711", "X-Forwarded-For": "203.0.113.9",
                                    "User-Agent": "console/2.1"})
    answer = await things_service.http.put("/v1/things/T-1?dry=no", headers=headers,
                                           json={"colour": "red", "note": "repainted", "password": "hunter2"})
    assert answer.status_code == 200

    [entry] = await things_service.entries()
    assert entry["who"]["subject"] == "op-7" and entry["who"]["roles"] == ["operator"]
    assert (entry["who"]["home_tenant"], entry["who"]["tenant"]) == ("riverside", "riverside")
    assert entry["who"]["token_id"]
    assert entry["at"].startswith(NOW.isoformat()[:19])
    assert entry["where"] == {"address": "203.0.113.9", "peer": PROXY, "user_agent": "console/2.1",
                              "forwarded_for": "203.0.113.9"}
    what = entry["what"]
    assert (what["method"], what["route"], what["path"]) == ("PUT", "/v1/things/{thing_id}", "/v1/things/T-1")
    assert what["path_params"] == {"thing_id": "T-1"} and what["query"] == {"dry": "no"}
    assert what["body"]["json"] == {"colour": "red", "note": "repainted", "password": "[redacted]"}
    assert not [row for row in await things_service.sql("SELECT record FROM audit_records") if "hunter2" in row[0]]
    assert entry["why"] == "ticket 4711"
    assert entry["outcome"]["state"] == "succeeded" and entry["outcome"]["status"] == 200
    assert entry["outcome"]["ids"] == {"thing_id": ["T-1"]}
    assert entry["before"]["status"] == 404  # PUT's undo needs the thing as it was: there was none


async def test_the_attempt_is_recorded_before_the_handler_runs(things_service: ThingsService) -> None:
    # A request killed mid-action (the process dies) leaves its attempt, shown as "outcome unknown".
    request = asyncio.create_task(things_service.http.post("/v1/things/T-9/hang", headers=things_service.as_()))
    for _ in range(200):
        if await things_service.sql("SELECT seq FROM audit_records WHERE kind = 'attempt'"):
            break
        await asyncio.sleep(0.02)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request

    [entry] = await things_service.entries(outcome="unknown")
    assert entry["what"]["path"] == "/v1/things/T-9/hang" and entry["outcome"]["state"] == "unknown"
    report = (await things_service.http.get("/v1/audit/verify", headers=things_service.auditor())).json()
    assert report["intact"] and report["outcome_unknown"] == [entry["seq"]]


async def test_an_action_whose_attempt_cannot_be_recorded_is_not_carried_out(
        things_service: ThingsService, monkeypatch: pytest.MonkeyPatch) -> None:
    async def unavailable(*_documents: Any) -> Any:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(things_service.app.state.audit, "record", unavailable)
    answer = await things_service.http.put("/v1/things/T-1", headers=things_service.as_(), json={"colour": "red"})
    assert (answer.status_code, answer.json()["detail"]["problem"]) == (503, "audit_unavailable")
    assert things_service.things == {}


async def test_a_handler_that_fails_is_recorded_with_its_error(things_service: ThingsService) -> None:
    with pytest.raises(RuntimeError):
        await things_service.http.post("/v1/explode", headers=things_service.as_())
    [entry] = await things_service.entries(outcome="failed")
    assert entry["outcome"]["status"] == 500 and entry["outcome"]["error"] == "RuntimeError"


async def test_refused_calls_are_security_events(things_service: ThingsService) -> None:
    anonymous = await things_service.http.put("/v1/things/T-1", json={"colour": "red"})
    forged = await things_service.http.delete("/v1/things/T-1", headers={"Authorization": "Bearer not-a-jwt"})
    auditor = await things_service.http.put("/v1/things/T-1", json={"colour": "red"},
                                            headers=things_service.auditor())
    assert (anonymous.status_code, forged.status_code, auditor.status_code) == (401, 401, 403)
    assert things_service.things == {}

    [refused] = await things_service.entries(outcome="refused")  # the auditor's own refusal, in their tenant
    assert refused["kind"] == "refused" and refused["who"]["subject"] == "aud-1"
    assert refused["outcome"]["status"] == 403 and "operate" in refused["why"]
    unknown_callers = await things_service.entries(tenant="_unauthenticated", outcome="refused")
    assert [(e["what"]["method"], e["who"]["subject"], e["outcome"]["status"]) for e in unknown_callers] == [
        ("PUT", "anonymous", 401), ("DELETE", "anonymous", 401)]
    assert unknown_callers[1]["who"]["token"] == "not a JWT"


async def test_a_refusal_by_the_handler_itself_is_a_refusal_too(things_service: ThingsService) -> None:
    answer = await things_service.http.post("/v1/things/T-1/lock", headers=things_service.as_())
    assert answer.status_code == 403
    [entry] = await things_service.entries(outcome="refused")
    assert (entry["kind"], entry["outcome"]["state"], entry["who"]["subject"]) == ("attempt", "refused", "op-7")
    assert await things_service.entries(outcome="failed") == []


async def test_a_read_is_not_recorded_unless_refused(things_service: ThingsService) -> None:
    await things_service.http.get("/v1/things/T-1", headers=things_service.as_())
    await things_service.http.get("/v1/things/T-1")
    [refused] = await things_service.entries(tenant="_unauthenticated")
    assert (refused["what"]["method"], refused["outcome"]["state"]) == ("GET", "refused")
    assert await things_service.entries() == []


async def test_a_body_that_cannot_be_read_is_recorded_as_rejected(things_service: ThingsService) -> None:
    answer = await things_service.http.put("/v1/things/T-1", content=b"{not json",
                                           headers={**things_service.as_(), "content-type": "application/json"})
    assert answer.status_code == 422
    [entry] = await things_service.entries()
    assert (entry["kind"], entry["outcome"]["state"], entry["who"]["subject"]) == ("rejected", "rejected", "op-7")
    assert entry["what"]["body"]["size_bytes"] == 9


async def test_a_public_route_records_the_provider(things_service: ThingsService) -> None:
    answer = await things_service.http.post("/v1/callbacks/alipay", json={"payment_id": "P-1"},
                                            headers={"X-Tenant-Id": "riverside"})
    assert answer.status_code == 201
    [entry] = await things_service.entries()
    assert entry["who"] == {"subject": "alipay", "public": "the provider signs the body"}
    assert entry["outcome"]["ids"] == {"payment_id": ["P-1"]}


async def test_the_query_filters_by_actor_action_object_outcome_and_time(things_service: ThingsService) -> None:
    http = things_service.http
    await http.put("/v1/things/T-1", headers=things_service.as_("op-7"), json={"colour": "red"})
    await http.put("/v1/things/T-2", headers=things_service.as_("op-8"), json={"colour": "blue"})
    created = (await http.post("/v1/things", headers=things_service.as_("op-8"), json={"colour": "green"})).json()
    await http.delete("/v1/things/T-404", headers=things_service.as_("op-7"))

    def paths(entries: list[dict[str, Any]]) -> list[str]:
        return [e["what"]["path"] for e in entries]

    assert paths(await things_service.entries(actor="op-8")) == ["/v1/things/T-2", "/v1/things"]
    assert paths(await things_service.entries(action="PUT /v1/things/{thing_id}")) == ["/v1/things/T-1",
                                                                                        "/v1/things/T-2"]
    assert paths(await things_service.entries(action="/v1/things/{thing_id}")) == [
        "/v1/things/T-1", "/v1/things/T-2", "/v1/things/T-404"]
    assert paths(await things_service.entries(object="T-2")) == ["/v1/things/T-2"]
    assert paths(await things_service.entries(object=created["thing_id"])) == ["/v1/things"]  # from the answer
    assert paths(await things_service.entries(outcome="failed")) == ["/v1/things/T-404"]
    assert len(await things_service.entries(outcome="succeeded")) == 3
    assert await things_service.entries(**{"from": "2026-07-01T04:00:01+00:00"}) == []
    assert len(await things_service.entries(**{"from": "2026-07-01T04:00:00+00:00",
                                               "to": "2026-07-01T04:00:01+00:00"})) == 4
    assert await things_service.entries(object="T-%") == []  # LIKE wildcards are plain characters


async def test_pages_follow_the_cursor_to_the_end(things_service: ThingsService) -> None:
    for number in range(5):
        await things_service.http.put(f"/v1/things/T-{number}", headers=things_service.as_(), json={"colour": "red"})
    seen, after = [], None
    while True:
        params = {"limit": 2, **({"after": after} if after is not None else {})}
        page = (await things_service.http.get("/v1/audit", params=params, headers=things_service.auditor())).json()
        seen += [e["what"]["path"] for e in page["entries"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == [f"/v1/things/T-{n}" for n in range(5)]


async def test_another_tenants_records_are_invisible(things_service: ThingsService) -> None:
    await things_service.http.put("/v1/things/T-1", headers=things_service.as_(), json={"colour": "red"})
    [entry] = await things_service.entries()

    assert await things_service.entries(tenant="lakeside") == []
    elsewhere = things_service.auditor("lakeside")
    assert (await things_service.http.get(f"/v1/audit/{entry['id']}", headers=elsewhere)).status_code == 404
    assert (await things_service.http.get(f"/v1/audit/{entry['id']}",
                                          headers=things_service.auditor())).status_code == 200
    undo = await things_service.http.post(f"/v1/audit/{entry['id']}/undo", json={"reason": "x"},
                                          headers=things_service.as_("boss", ("tenant_admin",), "lakeside"))
    assert undo.status_code == 404


async def test_reading_the_trail_needs_the_audit_permission(things_service: ThingsService) -> None:
    answer = await things_service.http.get("/v1/audit", headers=things_service.as_())
    assert answer.status_code == 403


async def test_one_entry_shows_every_record_with_its_hashes(things_service: ThingsService) -> None:
    await things_service.http.put("/v1/things/T-1", headers=things_service.as_(), json={"colour": "red"})
    [entry] = await things_service.entries()
    detail = (await things_service.http.get(f"/v1/audit/{entry['id']}", headers=things_service.auditor())).json()
    attempt, outcome = detail["records"]
    assert (attempt["record"]["kind"], outcome["record"]["kind"]) == ("attempt", "outcome")
    assert outcome["prev_hash"] == attempt["hash"] == entry["hash"]
    by_outcome = (await things_service.http.get(f"/v1/audit/{outcome['record']['id']}",
                                                headers=things_service.auditor())).json()
    assert by_outcome["id"] == entry["id"]


async def test_every_record_is_anchored_in_the_outbox_in_its_transaction(things_service: ThingsService) -> None:
    await things_service.http.put("/v1/things/T-1", headers=things_service.as_(), json={"colour": "red"})
    async with things_service.runtime.engine.connect() as conn:
        rows = (await conn.execute(select(OUTBOX).order_by(OUTBOX.c.id))).all()
    stored = await things_service.sql("SELECT seq, record_id, hash, record FROM audit_records ORDER BY seq")
    events = [decode_event(row.message_value) for row in rows]
    assert [row.topic for row in rows] == ["amiflow.audit", "amiflow.audit"]
    assert [(e.payload.seq, str(e.payload.record_id), e.payload.record_hash, e.payload.record)  # type: ignore[attr-defined]
            for e in events] == [tuple(s) for s in stored]
    assert [row.message_key for row in rows] == [b"riverside", b"riverside"]
    assert events[1].correlation_id == events[0].event_id  # the outcome belongs to the attempt's action


async def test_the_trail_refuses_to_be_rewritten(things_service: ThingsService) -> None:
    await things_service.http.put("/v1/things/T-1", headers=things_service.as_(), json={"colour": "red"})
    for statement in ("UPDATE audit_records SET actor = 'nobody'", "DELETE FROM audit_records"):
        with pytest.raises(Exception, match="append-only"):
            await things_service.sql(statement)
    assert len(await things_service.sql("SELECT seq FROM audit_records")) == 2
