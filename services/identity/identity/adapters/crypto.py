"""The cryptography identity holds: signing keys sealed at rest, password hashes, client secrets.

- Signing keys are ES256 (P-256). The private half is kept encrypted with AES-256-GCM under the
  key-encryption key (KEK), with the key id as associated data so a sealed key cannot be moved to another
  row. The KEK never enters the database.
- Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended profile).
- Client secrets are 256 random bits made here, so a slow hash would add nothing: they are kept as
  SHA-256 and compared in constant time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from identity.config import IdentitySettings

log = logging.getLogger("identity.crypto")

KEK_FILE = "key-encryption-key"
NONCE_BYTES = 12


class SealedKeyUnreadable(Exception):
    """A signing key cannot be opened with this process's key-encryption key."""


@dataclass(frozen=True)
class KeyEncryptionKey:
    """The AES-256 key that seals signing keys, and its fingerprint (safe to show and store)."""

    key: bytes

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(b"amiflow-identity-kek" + self.key).hexdigest()[:16]

    def seal(self, kid: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.key).encrypt(nonce, plaintext, kid.encode())

    def open(self, kid: str, sealed: bytes) -> bytes:
        try:
            return AESGCM(self.key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], kid.encode())
        except InvalidTag:
            raise SealedKeyUnreadable(f"signing key {kid} does not open with this key-encryption key") from None


def _decoded(text: str) -> bytes:
    cleaned = text.strip()
    padded = cleaned + "=" * (-len(cleaned) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError):
        raise ValueError("the key-encryption key is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"the key-encryption key must be 32 bytes (AES-256), not {len(raw)}")
    return raw


def _generated_kek_file(path: Path) -> Path:
    # API, worker and the bootstrap tool may start together: whoever links first wins, the others read it.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        return path
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    handle = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(handle, base64.urlsafe_b64encode(os.urandom(32)))
    finally:
        os.close(handle)
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path


def key_encryption_key(settings: IdentitySettings) -> KeyEncryptionKey:
    """IDENTITY_KEY_ENCRYPTION_KEY, or in development and test the one generated into the data folder."""
    if settings.key_encryption_key is not None:
        return KeyEncryptionKey(_decoded(settings.key_encryption_key.get_secret_value()))
    path = _generated_kek_file(settings.identity_dir / KEK_FILE)
    if path.stat().st_mode & 0o077:
        log.warning("%s can be read by other users of this machine: chmod 600 it", path)
    log.info("signing keys are sealed with the development key-encryption key in %s "
             "(set IDENTITY_KEY_ENCRYPTION_KEY on a server)", path)
    return KeyEncryptionKey(_decoded(path.read_text()))


# --- Signing keys ---------------------------------------------------------------------------------

def new_signing_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ES256 (P-256) private key."""
    return ec.generate_private_key(ec.SECP256R1())


def private_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def private_key_of(der: bytes) -> Any:
    return serialization.load_der_private_key(der, password=None)


# --- Passwords and client secrets -----------------------------------------------------------------

_hasher = PasswordHasher()
# Verified when the username does not exist, so that an unknown name takes as long as a wrong password.
_DECOY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def generated_password() -> str:
    """A password made for someone (shown once): 144 random bits, easy to paste."""
    return secrets.token_urlsafe(18)


async def hash_password(password: str) -> str:
    """Argon2id hash of `password`, off the event loop (it takes tens of milliseconds by design)."""
    return await asyncio.to_thread(_hasher.hash, password)


async def password_matches(stored_hash: str | None, password: str) -> bool:
    """True when `password` is the one `stored_hash` was made from; None hashes against a decoy."""
    def verify() -> bool:
        try:
            return _hasher.verify(stored_hash or _DECOY_HASH, password) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's (rehashed at the next login)."""
    return _hasher.check_needs_rehash(stored_hash)


def generated_client_id() -> str:
    return f"client_{secrets.token_hex(8)}"


def generated_client_secret() -> str:
    return secrets.token_urlsafe(32)


def client_secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def client_secret_matches(stored_hash: str | None, secret: str) -> bool:
    return hmac.compare_digest(stored_hash or "0" * 64, client_secret_hash(secret)) and stored_hash is not None
