"""A throwaway certificate authority for the local secured broker and its tests, never for production.

Production certificates come from the cluster (Strimzi's cluster CA); this one exists so a laptop or
CI can run Kafka with TLS exactly as production does: the broker presents a certificate for
127.0.0.1 and localhost signed by a CA that clients must be given, with hostname checks on.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough for a developer's broker home to outlive a few weeks of work; a throwaway CA either way.
VALIDITY = dt.timedelta(days=90)
# Certificates are valid from a little before now: a clock that lags by seconds must not see "not yet valid".
BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf certificate and its private key as PEM (the key encrypted when a password was given)."""

    certificate_pem: bytes
    key_pem: bytes = field(repr=False)


@dataclass(frozen=True)
class ThrowawayAuthority:
    """A self-signed CA that signs broker and client certificates for local use."""

    key: ec.EllipticCurvePrivateKey = field(repr=False)
    certificate: x509.Certificate

    @classmethod
    def create(cls, name: str = "amiflow throwaway CA") -> ThrowawayAuthority:
        """A new CA with a fresh P-256 key."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @classmethod
    def load(cls, certificate_file: Path, key_file: Path) -> ThrowawayAuthority:
        """The CA written earlier by `save`."""
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_file} does not hold the EC key of a throwaway CA")
        return cls(key, x509.load_pem_x509_certificate(certificate_file.read_bytes()))

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def save(self, certificate_file: Path, key_file: Path) -> None:
        """Write the CA certificate (public) and its key (owner-only)."""
        certificate_file.write_bytes(self.certificate_pem)
        write_private(key_file, self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))

    def issue(self, common_name: str, hosts: tuple[str, ...] = (),
              key_password: str | None = None) -> IssuedCertificate:
        """A leaf certificate for `hosts` (DNS names or IP addresses), usable by servers and clients.

        The key is PKCS#8, which both Python's ssl and Kafka's PEM key store read; encrypted with
        `key_password` when one is given.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if hosts:
            builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]),
                                            critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(key_password.encode()) if key_password
            else serialization.NoEncryption()
        )
        return IssuedCertificate(
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
            key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption),
        )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def write_private(path: Path, content: bytes) -> None:
    """Write a file only its owner can read: created 0600, never briefly world-readable."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(content)
