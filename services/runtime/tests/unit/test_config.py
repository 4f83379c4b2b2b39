"""Service settings: placeholder secrets refused outside development, aliases, the default database."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from amiflow_runtime.config import Environment, ServiceSettings, settings_config

_READ_FROM_ENV = ("AMIFLOW_ENV", "AMIFLOW_DATA_DIR", "AMIFLOW_HOME", "KAFKA_BOOTSTRAP_SERVERS",
                  "KAFKA_SASL_PASSWORD", "X_DATABASE_URL")


class XSettings(ServiceSettings):
    model_config = settings_config("X_")
    service_name: ClassVar[str] = "xsvc"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _READ_FROM_ENV:
        monkeypatch.delenv(name, raising=False)


def test_a_placeholder_kafka_password_is_refused_in_production_naming_the_field() -> None:
    with pytest.raises(ValueError, match="kafka_sasl_password"):
        ServiceSettings(AMIFLOW_ENV="production", KAFKA_SASL_PASSWORD="changeme")


def test_a_placeholder_is_recognised_whatever_its_case_and_padding() -> None:
    with pytest.raises(ValueError, match="kafka_sasl_password"):
        ServiceSettings(AMIFLOW_ENV="production", KAFKA_SASL_PASSWORD=" ChangeMe ")


def test_a_database_password_postgres_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMIFLOW_ENV", "production")
    monkeypatch.setenv("X_DATABASE_URL", "postgresql+asyncpg://app:postgres@db:5432/x")
    with pytest.raises(ValueError, match="database_url password"):
        XSettings()


def test_placeholders_are_accepted_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_DATABASE_URL", "postgresql+asyncpg://app:postgres@db:5432/x")
    settings = XSettings(AMIFLOW_ENV="development", KAFKA_SASL_PASSWORD="changeme")
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.database_url == "postgresql+asyncpg://app:postgres@db:5432/x"


def test_real_secrets_are_accepted_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_DATABASE_URL", "postgresql+asyncpg://app:s3cr3t-9f2@db:5432/x")
    settings = XSettings(AMIFLOW_ENV="production", KAFKA_SASL_PASSWORD="k4fka-9f2")
    assert settings.environment is Environment.PRODUCTION


def test_kafka_bootstrap_servers_is_set_by_its_platform_name() -> None:
    settings = ServiceSettings(KAFKA_BOOTSTRAP_SERVERS="kafka-0:9093,kafka-1:9093")
    assert settings.kafka_bootstrap_servers == "kafka-0:9093,kafka-1:9093"


def test_the_default_database_is_a_sqlite_file_named_after_the_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AMIFLOW_DATA_DIR", str(tmp_path))
    url = XSettings().resolved_database_url
    assert url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'xsvc.db'}"


def test_a_configured_database_url_wins_over_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_DATABASE_URL", "postgresql+asyncpg://app:pw@db/x")
    assert XSettings().resolved_database_url == "postgresql+asyncpg://app:pw@db/x"
