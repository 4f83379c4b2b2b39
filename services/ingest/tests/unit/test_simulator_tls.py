"""The simulator's TLS options: plain TCP unless asked; a gateway certificate from the ingest environment is
trusted as it is (pinned, whatever name it shows); a CA given on the command line also checks the name."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ingest.simulator.cli import build_parser, tls_of


@pytest.fixture(scope="module")
def gateway_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The gateway's certificate for gateway.example (not 127.0.0.1, where the test server listens), issued by
    a CA that nobody is given: trusting it means trusting exactly this certificate."""
    folder = tmp_path_factory.mktemp("gateway-cert")
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "some operator CA")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway")]))
            .issuer_name(ca).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("gateway.example")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (folder / "gw.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "gw.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return folder / "gw.crt", folder / "gw.key"


@pytest.fixture
async def tls_port(gateway_cert: tuple[Path, Path]) -> AsyncIterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*gateway_cert)

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello DTU\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def greeting(port: int, context: ssl.SSLContext, server_hostname: str = "127.0.0.1") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=server_hostname)
    try:
        return await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()


def test_without_tls_options_or_a_gateway_certificate_in_the_environment_the_dtus_speak_plain_tcp(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INGEST_GATEWAY_TLS_CERTFILE", raising=False)
    assert tls_of(build_parser().parse_args([])) is None


async def test_the_gateway_certificate_of_the_environment_is_trusted_as_it_is(
        monkeypatch: pytest.MonkeyPatch, gateway_cert: tuple[Path, Path], tls_port: int) -> None:
    monkeypatch.setenv("INGEST_GATEWAY_TLS_CERTFILE", str(gateway_cert[0]))
    context = tls_of(build_parser().parse_args([]))

    assert context is not None and context.minimum_version is ssl.TLSVersion.TLSv1_2
    # Pinned: neither the name on it nor its unknown issuer matters.
    assert await greeting(tls_port, context) == b"hello DTU\n"


async def test_a_ca_from_the_command_line_checks_the_gateway_s_name(
        monkeypatch: pytest.MonkeyPatch, gateway_cert: tuple[Path, Path], tls_port: int) -> None:
    monkeypatch.delenv("INGEST_GATEWAY_TLS_CERTFILE", raising=False)
    args = build_parser().parse_args(["--tls-ca", str(gateway_cert[0]), "--tls-server-name", "gateway.example"])
    context = tls_of(args)
    assert context is not None

    with pytest.raises(ssl.SSLCertVerificationError):
        await greeting(tls_port, context)  # 127.0.0.1 is not the name on the certificate
    assert await greeting(tls_port, context, args.tls_server_name) == b"hello DTU\n"


def test_a_client_certificate_without_anything_to_trust_the_gateway_by_is_a_usage_error(
        monkeypatch: pytest.MonkeyPatch, gateway_cert: tuple[Path, Path]) -> None:
    monkeypatch.delenv("INGEST_GATEWAY_TLS_CERTFILE", raising=False)
    args = build_parser().parse_args(["--tls-cert", str(gateway_cert[0]), "--tls-key", str(gateway_cert[1])])
    with pytest.raises(SystemExit):
        tls_of(args)
