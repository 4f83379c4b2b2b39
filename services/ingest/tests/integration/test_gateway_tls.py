"""TLS on the DTU port, against the real gateway and PostgreSQL with a throwaway CA: a simulated DTU
speaking TLS logs in and its meters' readings are decoded; a plaintext client on the TLS port gets
nothing decoded; with a client CA required, DTUs without a certificate (or with one from another CA)
are refused and a DTU with one is admitted."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from amiflow_runtime.localkafka import free_port
from amiflow_runtime.testing import unique
from amiflow_schemas import decode_event
from amiflow_schemas.events.registry import GatewayKind
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ingest import registry_app
from ingest.adapters import db
from ingest.config import IngestSettings
from ingest.core.registry import GatewayDetails, MeterDetails
from ingest.gateway.server import DtuGateway
from ingest.main import build_runtime
from ingest.simulator import Fleet, FleetSpec, MeterKind
from ingest.simulator.dtu import dtu_tls
from ingest.simulator.models import KINDS
from prometheus_client import REGISTRY
from sqlalchemy import select

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Pki:
    """Files of a throwaway CA: the gateway's certificate, a DTU's client certificate, and a stranger's."""

    ca: Path
    server_cert: Path
    server_key: Path
    dtu_cert: Path
    dtu_key: Path
    stranger_cert: Path
    stranger_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey,
           *, ca: bool = False, server: bool = False) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
    (folder / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        (folder / f"{stem}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    keys = {stem: ec.generate_private_key(ec.SECP256R1())
            for stem in ("ca", "server", "dtu", "other-ca", "stranger")}
    ca = _issue("amiflow test CA", keys["ca"], _name("amiflow test CA"), keys["ca"], ca=True)
    other = _issue("someone else's CA", keys["other-ca"], _name("someone else's CA"), keys["other-ca"], ca=True)
    _write(folder, "ca", ca, None)
    _write(folder, "server", _issue("gateway", keys["server"], ca.subject, keys["ca"], server=True), keys["server"])
    _write(folder, "dtu", _issue("DTU REG-0001", keys["dtu"], ca.subject, keys["ca"]), keys["dtu"])
    _write(folder, "stranger", _issue("DTU REG-0001", keys["stranger"], other.subject, keys["other-ca"]),
           keys["stranger"])
    return Pki(folder / "ca.crt", folder / "server.crt", folder / "server.key", folder / "dtu.crt",
               folder / "dtu.key", folder / "stranger.crt", folder / "stranger.key")


@dataclass
class HeadEnd:
    server: DtuGateway
    runtime: Any
    settings: IngestSettings
    tenant: str

    async def events(self, event_type: str) -> list[Any]:
        async with self.runtime.engine.connect() as conn:
            rows = (await conn.execute(select(db.outbox).order_by(db.outbox.c.id))).all()
        return [e for e in (decode_event(r.message_value) for r in rows) if e.event_type == event_type]


Start = Callable[..., Awaitable[HeadEnd]]


@pytest.fixture
async def start(postgres_database: Any) -> AsyncIterator[Start]:
    """A gateway with TLS on, and DTU-1 (REG-0001) registered, with whatever meters the test adds."""
    running: list[tuple[asyncio.Task[None], Any]] = []

    async def started(pki: Pki, **overrides: Any) -> HeadEnd:
        tenant = unique("tls")
        settings = IngestSettings(database_url=await postgres_database("ingest"), gateway_port=free_port(),
                                  gateway_tls_certfile=pki.server_cert, gateway_tls_keyfile=pki.server_key,
                                  gateway_poll_on_login=True, gateway_min_gap_s=0.05, gateway_login_timeout_s=5.0,
                                  **overrides)
        runtime = build_runtime(settings, "test")
        await runtime.migrate()
        server = DtuGateway(runtime, settings, instance="tls-test")
        task = asyncio.create_task(server.run())
        running.append((task, runtime))
        await asyncio.wait_for(server.listening.wait(), 10)
        return HeadEnd(server, runtime, settings, tenant)

    yield started
    for task, runtime in running:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runtime.engine.dispose()


async def register(head_end: HeadEnd, fleet: Fleet) -> None:
    """The fleet's DTUs and meters, straight into the registry."""
    for dtu in fleet.dtus.values():
        await registry_app.register_gateway(head_end.runtime, head_end.tenant, dtu.dtu_id,
                                            GatewayDetails(GatewayKind.DTU, dtu.registration_id))
        for meter in dtu.meters:
            facts = KINDS[meter.spec.kind]
            await registry_app.register_meter(head_end.runtime, head_end.tenant, meter.meter_id, MeterDetails(
                facts.utility, facts.profile, meter.bus_address, facts.unit, gateway_id=dtu.dtu_id))


def water_fleet(tenant: str, meters: int = 3) -> Fleet:
    return Fleet.build(FleetSpec(meters=meters, dtus=1, seed=9, prefix=tenant.upper(), tenant=tenant,
                                 mix=((MeterKind.WATER, 1),), drift_rate=0.0))


def refused_handshakes() -> float:
    return REGISTRY.get_sample_value("amiflow_gateway_refused_total", {"reason": "tls_handshake"}) or 0.0


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.05)
    return result


async def _now(value: bool) -> bool:
    return value


async def test_a_dtu_speaking_tls_logs_in_and_its_meters_readings_are_decoded(start: Start, pki: Pki) -> None:
    head_end = await start(pki)
    fleet = water_fleet(head_end.tenant)
    await register(head_end, fleet)
    [dtu] = fleet.dtus.values()

    await fleet.start("127.0.0.1", head_end.settings.gateway_port, dtu_tls(str(pki.ca)))
    try:
        readings = await eventually(lambda: _all_read(head_end, set(fleet.meters)))
    finally:
        await fleet.stop()

    assert {e.payload.meter_id for e in readings} == set(fleet.meters)
    delivered = {d.meter_id: d.values for d in fleet.ledger.readings()}
    for event in readings:
        assert {r.register: r.value for r in event.payload.registers} == delivered[event.payload.meter_id]
        assert event.payload.gateway_id == dtu.dtu_id and event.tenant_id == head_end.tenant


async def _all_read(head_end: HeadEnd, meters: set[str]) -> list[Any]:
    readings = await head_end.events("ReadingReceived")
    return readings if {e.payload.meter_id for e in readings} == meters else []


async def test_a_plaintext_client_on_the_tls_port_gets_nothing_decoded(start: Start, pki: Pki) -> None:
    head_end = await start(pki)
    fleet = water_fleet(head_end.tenant, meters=1)
    await register(head_end, fleet)
    [dtu] = fleet.dtus.values()
    before = refused_handshakes()

    await fleet.start("127.0.0.1", head_end.settings.gateway_port)  # no TLS context: plain TCP
    try:
        await eventually(lambda: _now(refused_handshakes() >= before + 1 and dtu.stats.logins >= 1))
    finally:
        await fleet.stop()

    assert not head_end.server.links
    assert len(fleet.ledger) == 0  # no request ever reached its meter
    assert not await head_end.events("ReadingReceived") and not await head_end.events("FrameRejected")


async def test_with_a_client_ca_only_dtus_presenting_a_certificate_it_issued_are_admitted(
        start: Start, pki: Pki) -> None:
    head_end = await start(pki, gateway_tls_cafile=pki.ca)
    fleet = water_fleet(head_end.tenant, meters=1)
    await register(head_end, fleet)
    [dtu] = fleet.dtus.values()
    key = (head_end.tenant, dtu.dtu_id)
    port = head_end.settings.gateway_port

    for cert, key_file in ((None, None), (pki.stranger_cert, pki.stranger_key)):
        before = refused_handshakes()
        context = dtu_tls(str(pki.ca), str(cert) if cert else None, str(key_file) if key_file else None)
        await fleet.start("127.0.0.1", port, context)
        try:
            await eventually(lambda floor=before + 1: _now(refused_handshakes() >= floor))
        finally:
            await fleet.stop()
        assert key not in head_end.server.links and len(fleet.ledger) == 0

    await fleet.start("127.0.0.1", port, dtu_tls(str(pki.ca), str(pki.dtu_cert), str(pki.dtu_key)))
    try:
        await eventually(lambda: _now(key in head_end.server.links))
        [reading] = await eventually(lambda: head_end.events("ReadingReceived"))
    finally:
        await fleet.stop()
    assert reading.payload.meter_id in fleet.meters


def test_tls_settings_come_as_a_pair(pki: Pki) -> None:
    with pytest.raises(ValueError, match="go together"):
        IngestSettings(gateway_tls_certfile=pki.server_cert)
    with pytest.raises(ValueError, match="needs the gateway's own certificate"):
        IngestSettings(gateway_tls_cafile=pki.ca)


def test_the_gateway_refuses_anything_older_than_tls_1_2(pki: Pki) -> None:
    from ingest.gateway.tls import server_context

    context = server_context(IngestSettings(gateway_tls_certfile=pki.server_cert, gateway_tls_keyfile=pki.server_key))
    assert context is not None and context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_NONE
