"""Settings shared by every service; each service subclasses with its own env prefix.

This module and the services' config.py are the only readers of the environment. Platform-wide
settings (Kafka, environment, telemetry, logging) have fixed names without a prefix so one
ConfigMap serves all services; per-service settings carry the prefix (INGEST_DATABASE_URL, ...).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from amiflow_runtime.paths import project_root

# Values that mean "nobody set this": refused outside development and test.
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "changethis", "secret", "password", "placeholder",
     "example", "xxx", "todo", "amiflow", "postgres", "admin"}
)


KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


def _platform(name: str, default: Any, **kw: Any) -> Any:
    """A platform-wide setting read from an unprefixed variable of that name."""
    return Field(default, validation_alias=AliasChoices(name), **kw)


class ServiceSettings(BaseSettings):
    """Settings every service process has."""

    # populate_by_name: ServiceSettings(kafka_bootstrap_servers=...) works as well as the env name.
    # hide_input_in_errors: a refused setting must not print the other inputs, passwords among them.
    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True, hide_input_in_errors=True)

    service_name: ClassVar[str] = "amiflow"
    default_api_port: ClassVar[int] = 8000

    environment: Environment = _platform("AMIFLOW_ENV", Environment.DEVELOPMENT)
    data_dir: Path | None = _platform("AMIFLOW_DATA_DIR", None)

    kafka_bootstrap_servers: str = _platform("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    kafka_security_protocol: str = _platform("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")  # or SSL, SASL_PLAINTEXT, SASL_SSL
    kafka_sasl_mechanism: str | None = _platform("KAFKA_SASL_MECHANISM", None)
    kafka_sasl_username: str | None = _platform("KAFKA_SASL_USERNAME", None)
    kafka_sasl_password: SecretStr | None = _platform("KAFKA_SASL_PASSWORD", None)
    kafka_ssl_cafile: Path | None = _platform("KAFKA_SSL_CAFILE", None)
    # Mutual TLS: a client certificate the cluster's CA signed, and its key (encrypted when a password is set).
    kafka_ssl_certfile: Path | None = _platform("KAFKA_SSL_CERTFILE", None)
    kafka_ssl_keyfile: Path | None = _platform("KAFKA_SSL_KEYFILE", None)
    kafka_ssl_key_password: SecretStr | None = _platform("KAFKA_SSL_KEY_PASSWORD", None)
    # How long a starting process waits for the broker before giving up (it logs every retry).
    kafka_connect_timeout_s: float = _platform("KAFKA_CONNECT_TIMEOUT_S", 300.0)

    @field_validator("kafka_sasl_username", "kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile",
                     "kafka_ssl_key_password", mode="before")
    @classmethod
    def _blank_kafka_setting_is_unset(cls, value: Any) -> Any:
        # A ConfigMap entry left empty means "not set"; as a path it would silently become ".".
        return (value.strip() or None) if isinstance(value, str) else value

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _kafka_names_in_upper_case(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            blank = "PLAINTEXT" if info.field_name == "kafka_security_protocol" else None
            return value.strip().upper() or blank
        return value

    @model_validator(mode="after")
    def _coherent_kafka_security(self) -> ServiceSettings:
        # A half-configured security setup must stop the process at start, not fall back to plaintext
        # or surface as a handshake error deep inside the first consumer.
        protocol, mechanism = self.kafka_security_protocol, self.kafka_sasl_mechanism
        tls_files = [name for name, value in (("KAFKA_SSL_CAFILE", self.kafka_ssl_cafile),
                                              ("KAFKA_SSL_CERTFILE", self.kafka_ssl_certfile),
                                              ("KAFKA_SSL_KEYFILE", self.kafka_ssl_keyfile),
                                              ("KAFKA_SSL_KEY_PASSWORD", self.kafka_ssl_key_password)) if value]
        problems = []
        if protocol not in KAFKA_SECURITY_PROTOCOLS:
            problems.append(f"KAFKA_SECURITY_PROTOCOL must be one of {', '.join(KAFKA_SECURITY_PROTOCOLS)}, "
                            f"not {self.kafka_security_protocol!r}")
        elif protocol.startswith("SASL_") and not mechanism:
            problems.append(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_MECHANISM "
                            f"({', '.join(KAFKA_SASL_MECHANISMS)})")
        elif mechanism and not protocol.startswith("SASL_"):
            problems.append(f"KAFKA_SASL_MECHANISM={mechanism} is ignored by KAFKA_SECURITY_PROTOCOL={protocol}: "
                            "use SASL_SSL")
        if mechanism and mechanism not in KAFKA_SASL_MECHANISMS:
            problems.append(f"KAFKA_SASL_MECHANISM must be one of {', '.join(KAFKA_SASL_MECHANISMS)}, "
                            f"not {mechanism!r}")
        elif mechanism and not (self.kafka_sasl_username and self.kafka_sasl_password):
            problems.append(f"KAFKA_SASL_MECHANISM={mechanism} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        if mechanism == "PLAIN" and protocol == "SASL_PLAINTEXT" and self.environment not in (
                Environment.DEVELOPMENT, Environment.TEST):
            problems.append("SASL PLAIN over SASL_PLAINTEXT sends the password in clear text: use SASL_SSL")
        if tls_files and protocol not in ("SSL", "SASL_SSL"):
            problems.append(f"{', '.join(tls_files)} set, but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS")
        if (self.kafka_ssl_keyfile or self.kafka_ssl_key_password) and not self.kafka_ssl_certfile:
            problems.append("KAFKA_SSL_KEYFILE and KAFKA_SSL_KEY_PASSWORD belong to a client certificate: "
                            "set KAFKA_SSL_CERTFILE")
        if problems:
            raise ValueError("Kafka security settings: " + "; ".join(problems))
        return self

    # The tenant of routes that authenticate without a token (a provider's signed callback) when the
    # caller names none in X-Tenant-Id; every other call acts in its token's tenant.
    default_tenant: str = _platform("AMIFLOW_DEFAULT_TENANT", "demo")

    # Bearer tokens: who issues them (the `iss` claim, an identifier rather than an address), for whom
    # (`aud`), and where the issuer publishes its keys. A JWKS file (a mounted secret, or the test suite's
    # keys) may be given as well: keys from both are trusted.
    auth_issuer: str = _platform("AMIFLOW_AUTH_ISSUER", "urn:amiflow:identity")
    auth_audience: str = _platform("AMIFLOW_AUTH_AUDIENCE", "amiflow")
    auth_jwks_url: str | None = _platform("AMIFLOW_AUTH_JWKS_URL", "http://127.0.0.1:8006/.well-known/jwks.json")
    auth_jwks_file: Path | None = _platform("AMIFLOW_AUTH_JWKS_FILE", None)
    # Clock difference tolerated between the issuer and this process when checking exp / iat / nbf.
    auth_leeway_s: float = _platform("AMIFLOW_AUTH_LEEWAY_S", 30.0)
    # Proxies (comma-separated addresses or CIDR networks) whose X-Forwarded-For the audit trail believes
    # when it records where a call came from; from anyone else the header is kept but not believed.
    trusted_proxies: str = _platform("AMIFLOW_TRUSTED_PROXIES", "")
    # The largest request body an API reads (bytes); larger ones are answered 413 unread. Routes that take
    # files declare their own allowance (http_refusals.allows_body).
    http_max_body_bytes: int = _platform("AMIFLOW_HTTP_MAX_BODY_BYTES", 1024 * 1024, ge=1024)

    # The tenant's zone for local days and for meter clocks, which send local wall time without offset.
    time_zone: str = _platform("AMIFLOW_TIME_ZONE", "Asia/Shanghai")
    # Tenants whose zone differs from AMIFLOW_TIME_ZONE, as a JSON object {"tenant": "Europe/Berlin"}.
    tenant_time_zones: dict[str, str] = _platform("AMIFLOW_TENANT_TIME_ZONES", {})

    log_level: str = _platform("LOG_LEVEL", "INFO")
    log_format: str = _platform("LOG_FORMAT", "json")
    otel_exporter_otlp_endpoint: str | None = _platform("OTEL_EXPORTER_OTLP_ENDPOINT", None)

    database_url: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int | None = None
    # Workers serve /healthz, /readyz and /metrics here (api_port + 100 unless set).
    ops_port: int | None = None
    consumer_batch_size: int = 500
    # How long a worker waits for a batch to fill before applying what it has: the latency a reading pays
    # at low load, for one commit per batch instead of one per event at high load.
    consumer_batch_wait_s: float = 0.02
    # Applied event ids are kept this long: far beyond any redelivery (uncommitted offsets, rebalances,
    # a relay resending after a crash), far shorter than forever.
    inbox_retention_days: int = 30

    @model_validator(mode="after")
    def _known_time_zones(self) -> ServiceSettings:
        # A typo in a zone would otherwise surface as a crash on the first reading of that tenant.
        for zone in (self.time_zone, *self.tenant_time_zones.values()):
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {zone!r}") from exc
        return self

    def zone_of(self, tenant_id: str) -> str:
        """The IANA zone of a tenant's local days and meter clocks."""
        return self.tenant_time_zones.get(tenant_id, self.time_zone)

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.environment in (Environment.DEVELOPMENT, Environment.TEST):
            return self
        problems = [name for name, value in self._secrets().items() if value.strip().lower()
                    in PLACEHOLDER_SECRETS]
        if problems:
            raise ValueError(f"placeholder secrets are refused in {self.environment.value}: "
                             f"{', '.join(sorted(problems))}")
        return self

    def _secrets(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                found[name] = value.get_secret_value()
        if self.database_url:
            password = make_url(self.database_url).password
            if password is not None:
                found["database_url password"] = str(password)
        return found

    @property
    def resolved_data_dir(self) -> Path:
        """Folder for embedded data (SQLite files, Faust state): AMIFLOW_DATA_DIR or ./data."""
        return (self.data_dir or project_root() / "data").resolve()

    @property
    def resolved_database_url(self) -> str:
        """DATABASE_URL, or the embedded SQLite file of this service."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.resolved_data_dir / (self.service_name + '.db')}"

    @property
    def resolved_api_port(self) -> int:
        return self.api_port or self.default_api_port

    @property
    def resolved_ops_port(self) -> int:
        return self.ops_port or self.resolved_api_port + 100


def settings_config(prefix: str) -> SettingsConfigDict:
    """The pydantic-settings config of one service: its env prefix and strictness."""
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", frozen=True, populate_by_name=True,
                              hide_input_in_errors=True)
