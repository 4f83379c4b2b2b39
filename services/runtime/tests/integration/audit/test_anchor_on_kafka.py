"""Each audit record reaches amiflow.audit on a real broker through the outbox, and verify --against-kafka finds
what the chain alone cannot: newest records cut off its end, and a chain rewritten with recomputed hashes."""

from __future__ import annotations

import asyncio

import pytest
from amiflow_runtime.audit import chain_hash
from amiflow_runtime.audit_cli import audit_command, published_hashes
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.kafka import make_producer
from amiflow_runtime.outbox import OutboxRelay

from .conftest import OUTBOX, ThingsService

pytestmark = pytest.mark.integration


def _settings(service: ThingsService, bootstrap: str) -> ServiceSettings:
    return ServiceSettings(database_url=service.database_url, kafka_bootstrap_servers=bootstrap)


async def _publish(service: ThingsService, bootstrap: str) -> None:
    producer = make_producer(_settings(service, bootstrap), client_id="audit-test")
    await producer.start()
    try:
        relay = OutboxRelay(service.runtime.engine, OUTBOX, producer, "audit-test")
        while await relay.publish_batch():
            pass
    finally:
        await producer.stop()


async def _verify(service: ThingsService, bootstrap: str, capsys: pytest.CaptureFixture[str],
                  *flags: str) -> tuple[int, str]:
    code = await asyncio.to_thread(audit_command, ["verify", *flags], lambda: _settings(service, bootstrap))
    return code, capsys.readouterr().out


async def _drop_guards(service: ThingsService) -> None:
    if service.database_url.startswith("postgresql"):
        await service.sql("DROP TRIGGER audit_records_append_only ON audit_records")
    else:
        await service.sql("DROP TRIGGER audit_records_no_update")
        await service.sql("DROP TRIGGER audit_records_no_delete")


async def _act(service: ThingsService, bootstrap: str) -> list[tuple[int, str, str]]:
    for colour in ("red", "blue"):
        await service.http.put("/v1/things/T-1", headers=service.as_(), json={"colour": colour})
    await _publish(service, bootstrap)
    return [tuple(row) for row in await service.sql("SELECT seq, hash, chain_id FROM audit_records ORDER BY seq")]


async def test_every_record_reaches_the_audit_topic_with_its_hash(
        things_service: ThingsService, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    stored = await _act(things_service, kafka_bootstrap)
    published = await published_hashes(_settings(things_service, kafka_bootstrap), "amiflow", stored[0][2])
    assert published == {seq: hash_ for seq, hash_, _ in stored}
    code, out = await _verify(things_service, kafka_bootstrap, capsys, "--against-kafka")
    assert code == 0, out
    assert "amiflow: intact: 4 records" in out and "0 record(s) not published yet" in out


async def test_records_cut_off_the_end_are_found_only_against_the_published_copy(
        things_service: ThingsService, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    await _act(things_service, kafka_bootstrap)
    await _drop_guards(things_service)
    await things_service.sql("DELETE FROM audit_records WHERE seq >= 3")

    assert (await _verify(things_service, kafka_bootstrap, capsys))[0] == 0  # the chain alone looks intact
    code, out = await _verify(things_service, kafka_bootstrap, capsys, "--against-kafka")
    assert code == 1
    assert "amiflow: seq 3: published on amiflow.audit but missing from the database" in out
    assert "amiflow: seq 4: published on amiflow.audit but missing from the database" in out


async def test_a_chain_rewritten_with_new_hashes_disagrees_with_the_published_copy(
        things_service: ThingsService, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    await _act(things_service, kafka_bootstrap)
    await _drop_guards(things_service)
    rows = await things_service.sql("SELECT seq, record FROM audit_records ORDER BY seq")
    prev_hash = "0" * 64
    for seq, record in rows:  # what a DBA covering their tracks does: edit, then recompute every hash
        forged = record.replace('"blue"', '"navy"')
        new_hash = chain_hash(prev_hash, forged)
        await things_service.sql("UPDATE audit_records SET record = :r, prev_hash = :p, hash = :h WHERE seq = :s",
                                 r=forged, p=prev_hash, h=new_hash, s=seq)
        prev_hash = new_hash

    assert (await _verify(things_service, kafka_bootstrap, capsys))[0] == 0
    code, out = await _verify(things_service, kafka_bootstrap, capsys, "--against-kafka")
    assert code == 1
    assert "amiflow: seq 3: differs from the copy published on amiflow.audit" in out
