"""Identity's tables: signing keys (private halves encrypted), users, clients, and login failures."""

from __future__ import annotations

from amiflow_runtime.db import UtcDateTime, inbox_table, outbox_table
from sqlalchemy import JSON, Boolean, Column, Index, Integer, LargeBinary, MetaData, String, Table, Text, text

metadata = MetaData()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

signing_keys = Table(
    "signing_keys", metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("public_jwk", Text, nullable=False),  # JSON
    # AES-GCM: 12-byte nonce + ciphertext of the PKCS#8 key, with the kid as associated data. Erased when
    # the key retires: a retired key only verifies, it never signs again.
    Column("private_key", LargeBinary, nullable=True),
    # Which key-encryption key sealed it (the first bytes of its SHA-256): a wrong key is named at once.
    Column("kek_fingerprint", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("retired_at", UtcDateTime(), nullable=True),
    # At most one active key, whatever two replicas rotating at once try.
    Index("ux_signing_keys_active", "algorithm", unique=True, postgresql_where=text("retired_at IS NULL"),
          sqlite_where=text("retired_at IS NULL")),
)

users = Table(
    "users", metadata,
    Column("username", String(64), primary_key=True),  # unique across tenants: see core.credentials
    Column("tenant_id", String(64), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("sites", JSON, nullable=True),
    Column("duties", JSON, nullable=True),
    Column("account_id", String(64), nullable=True),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("password_changed_at", UtcDateTime(), nullable=False),
    Index("ix_users_tenant", "tenant_id", "username"),
)

clients = Table(
    "clients", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(128), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("scopes", JSON, nullable=True),
    Column("sites", JSON, nullable=True),
    Column("duties", JSON, nullable=True),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("disabled_at", UtcDateTime(), nullable=True),
    Column("disabled_by", String(128), nullable=True),
    Index("ix_clients_tenant", "tenant_id", "client_id"),
)

# Failed attempts per throttle key ("username:…", "client:…", "address:…"), shared by every API replica.
login_failures = Table(
    "login_failures", metadata,
    Column("throttle_key", String(200), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failed_at", UtcDateTime(), nullable=False),
    Column("locked_until", UtcDateTime(), nullable=True),
)
