"""Kafka security settings: nonsense refused at start, one set of options for every client, Faust included."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import faust
import pytest
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.faustapp import broker_credentials, faust_kafka_options
from amiflow_runtime.kafka import KafkaSecurityError, client_options
from amiflow_runtime.tls import ThrowawayAuthority
from faust.types.auth import AuthProtocol, SASLMechanism

_KAFKA_ENV = ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME",
              "KAFKA_SASL_PASSWORD", "KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE",
              "KAFKA_SSL_KEY_PASSWORD", "AMIFLOW_ENV")
SCRAM: dict[str, Any] = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
         "KAFKA_SASL_USERNAME": "vee", "KAFKA_SASL_PASSWORD": "s3cr3t-9f2"}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _KAFKA_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A CA file and a client certificate whose key is encrypted with the password 'key-pw-7'."""
    authority = ThrowawayAuthority.create()
    client = authority.issue("vee", key_password="key-pw-7")
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "vee.pem", "key": tmp_path / "vee-key.pem"}
    files["ca"].write_bytes(authority.certificate_pem)
    files["cert"].write_bytes(client.certificate_pem)
    files["key"].write_bytes(client.key_pem)
    return files


@pytest.mark.parametrize(("given", "named"), [
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs KAFKA_SASL_MECHANISM"),
    ({**SCRAM, "KAFKA_SASL_PASSWORD": None}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
    ({**SCRAM, "KAFKA_SASL_USERNAME": ""}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
    ({**SCRAM, "KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM must be one of"),
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL must be one of"),
    ({**SCRAM, "KAFKA_SECURITY_PROTOCOL": "SSL"}, "is ignored by KAFKA_SECURITY_PROTOCOL=SSL"),
    ({"KAFKA_SSL_CAFILE": "/etc/kafka/ca.pem"}, "KAFKA_SSL_CAFILE set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEYFILE": "/k.pem"}, "set KAFKA_SSL_CERTFILE"),
    ({**SCRAM, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN",
      "AMIFLOW_ENV": "production"}, "password in clear text"),
])
def test_a_nonsense_security_combination_is_refused_naming_the_setting(given: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        ServiceSettings(**{k: v for k, v in given.items() if v is not None})


def test_a_refusal_does_not_print_the_passwords_it_was_given() -> None:
    with pytest.raises(ValueError, match="needs KAFKA_SASL_MECHANISM") as refused:
        ServiceSettings(KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_USERNAME="vee",
                        KAFKA_SASL_PASSWORD="s3cr3t-9f2", KAFKA_SSL_KEY_PASSWORD="key-pw-7")
    assert "s3cr3t-9f2" not in str(refused.value) and "key-pw-7" not in str(refused.value)


def test_plain_over_sasl_plaintext_is_allowed_for_a_local_broker_in_development() -> None:
    settings = ServiceSettings(**{**SCRAM, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                                  "KAFKA_SASL_MECHANISM": "PLAIN"})
    assert client_options(settings)["sasl_mechanism"] == "PLAIN"
    assert "ssl_context" not in client_options(settings)


def test_names_are_read_in_any_case_and_blank_values_mean_unset() -> None:
    settings = ServiceSettings(KAFKA_SECURITY_PROTOCOL=" sasl_ssl ", KAFKA_SASL_MECHANISM="scram-sha-256",
                               KAFKA_SASL_USERNAME="vee", KAFKA_SASL_PASSWORD="s3cr3t-9f2", KAFKA_SSL_CAFILE="",
                               KAFKA_SSL_CERTFILE=" ")
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-256")
    assert settings.kafka_ssl_cafile is None  # not Path("."): an empty ConfigMap value is no file at all
    assert settings.kafka_ssl_certfile is None


def test_a_placeholder_key_password_is_refused_in_production(pki: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="kafka_ssl_key_password"):
        ServiceSettings(**SCRAM, AMIFLOW_ENV="production", KAFKA_SSL_CAFILE=pki["ca"], KAFKA_SSL_CERTFILE=pki["cert"],
                        KAFKA_SSL_KEYFILE=pki["key"], KAFKA_SSL_KEY_PASSWORD="changeme")


def test_sasl_ssl_options_verify_the_broker_and_its_host_name_and_carry_the_client_certificate(
        pki: dict[str, Path]) -> None:
    settings = ServiceSettings(**SCRAM, KAFKA_SSL_CAFILE=pki["ca"], KAFKA_SSL_CERTFILE=pki["cert"],
                               KAFKA_SSL_KEYFILE=pki["key"], KAFKA_SSL_KEY_PASSWORD="key-pw-7")
    options = client_options(settings)
    context: ssl.SSLContext = options["ssl_context"]
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "amiflow throwaway CA"),),)]
    assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("vee", "s3cr3t-9f2")
    assert "s3cr3t-9f2" not in repr(settings) and "key-pw-7" not in repr(settings)


def test_a_wrong_key_password_stops_the_client_without_revealing_it(pki: dict[str, Path]) -> None:
    settings = ServiceSettings(**SCRAM, KAFKA_SSL_CAFILE=pki["ca"], KAFKA_SSL_CERTFILE=pki["cert"],
                               KAFKA_SSL_KEYFILE=pki["key"], KAFKA_SSL_KEY_PASSWORD="wrong-pw-3")
    with pytest.raises(KafkaSecurityError, match="KAFKA_SSL_KEY_PASSWORD") as refused:
        client_options(settings)
    assert "wrong-pw-3" not in str(refused.value)


def test_an_encrypted_key_without_its_password_is_refused_rather_than_prompted_for(pki: dict[str, Path]) -> None:
    settings = ServiceSettings(**SCRAM, KAFKA_SSL_CAFILE=pki["ca"], KAFKA_SSL_CERTFILE=pki["cert"],
                               KAFKA_SSL_KEYFILE=pki["key"])
    with pytest.raises(KafkaSecurityError, match="could not be loaded"):
        client_options(settings)


def test_a_missing_ca_file_is_named() -> None:
    settings = ServiceSettings(**SCRAM, KAFKA_SSL_CAFILE="/nowhere/ca.pem")
    with pytest.raises(KafkaSecurityError, match=r"KAFKA_SSL_CAFILE=/nowhere/ca\.pem"):
        client_options(settings)


def test_faust_gets_the_same_sasl_and_tls_settings_as_the_other_clients(pki: dict[str, Path]) -> None:
    settings = ServiceSettings(**SCRAM, KAFKA_BOOTSTRAP_SERVERS="k-0:9093,k-1:9093", KAFKA_SSL_CAFILE=pki["ca"])
    credentials = broker_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.protocol, credentials.mechanism) == (AuthProtocol.SASL_SSL, SASLMechanism.SCRAM_SHA_512)
    assert (credentials.username, credentials.password) == ("vee", "s3cr3t-9f2")
    assert credentials.ssl_context is not None and credentials.ssl_context.check_hostname
    options = faust_kafka_options(settings)
    assert options["broker"] == "kafka://k-0:9093;k-1:9093"
    assert options["broker_credentials"] is not None


def test_faust_gets_tls_without_sasl_and_nothing_on_plaintext(pki: dict[str, Path]) -> None:
    tls_only = broker_credentials(ServiceSettings(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=pki["ca"]))
    assert isinstance(tls_only, faust.SSLCredentials)
    assert tls_only.protocol == AuthProtocol.SSL
    assert broker_credentials(ServiceSettings()) is None
