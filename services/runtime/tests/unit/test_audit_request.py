"""What an audit record keeps of a request: secrets redacted, bodies capped, why, ids, who and where."""

from __future__ import annotations

import hashlib
import json

from amiflow_runtime.audit_request import (
    BODY_LIMIT_BYTES,
    REDACTED,
    body_summary,
    client_address,
    ids_in_answer,
    objects_of,
    reason_of,
    redacted,
    trusted_networks,
    where_of,
    who_of,
)
from amiflow_runtime.auth import principal_of


def summary_of(document: object, content_type: str | None = "application/json") -> dict[str, object] | None:
    raw = json.dumps(document).encode()
    return body_summary(raw, len(raw), hashlib.sha256(raw).hexdigest(), content_type)


def test_secrets_are_redacted_at_any_depth_and_identifiers_are_kept() -> None:
    body = {"username": "li.wei", "password": "hunter2", "client_secret": "s3cr3t", "api_key": "k",
            "idempotency_key": "ticket-4711", "nested": [{"access_token": "t", "meter_id": "WM-1"}],
            "private_key_pem": "-----BEGIN", "Authorization": "Bearer x"}
    assert redacted(body) == {"username": "li.wei", "password": REDACTED, "client_secret": REDACTED,
                              "api_key": REDACTED, "idempotency_key": "ticket-4711",
                              "nested": [{"access_token": REDACTED, "meter_id": "WM-1"}],
                              "private_key_pem": REDACTED, "Authorization": REDACTED}


def test_a_small_json_body_is_kept_whole_with_its_size_and_hash() -> None:
    raw = b'{"device_id": "EM-1", "amount": 12.50}'
    summary = body_summary(raw, len(raw), hashlib.sha256(raw).hexdigest(), "application/json; charset=utf-8")
    assert summary is not None
    assert summary["json"] == {"device_id": "EM-1", "amount": "12.50"}  # exact decimal text
    assert (summary["size_bytes"], summary["sha256"]) == (len(raw), hashlib.sha256(raw).hexdigest())


def test_a_body_holding_a_secret_keeps_no_hash_of_itself() -> None:
    """A hash of a body with a predictable shape around a password would let anyone guess the password."""
    raw = b'{"device_id": "EM-1", "password": "hunter2"}'
    summary = body_summary(raw, len(raw), hashlib.sha256(raw).hexdigest(), "application/json")
    assert summary is not None and "sha256" not in summary and summary["sha256_withheld"]
    assert summary["json"] == {"device_id": "EM-1", "password": REDACTED}


def test_a_large_json_body_keeps_its_top_level_fields_only() -> None:
    summary = summary_of({"batch_id": "B-1", "token": "t", "lines": [{"account_id": f"A-{i}"} for i in range(2000)]})
    assert summary is not None and summary["truncated"] is True and "json" not in summary
    assert summary["fields"] == {"batch_id": "B-1", "token": REDACTED}
    assert len(json.dumps(summary)) < BODY_LIMIT_BYTES


def test_a_body_cut_short_in_capture_is_kept_by_size_only() -> None:
    raw = json.dumps({"rows": "x" * 100}).encode()
    summary = body_summary(raw[:10], len(raw), "ab" * 32, "application/json")
    assert summary == {"size_bytes": len(raw), "content_type": "application/json", "truncated": True,
                       "sha256_withheld": "the body holds or may hold a secret"}  # unread: it might hold one


def test_an_upload_or_csv_is_kept_by_size_and_hash_only() -> None:
    raw = b"meter_id,utility\nWM-1,water\n"
    summary = body_summary(raw, len(raw), hashlib.sha256(raw).hexdigest(), "text/csv")
    assert summary == {"size_bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest(), "content_type": "text/csv"}


def test_a_body_that_says_json_but_is_not_is_marked_unreadable() -> None:
    raw = b"{not json"
    summary = body_summary(raw, len(raw), hashlib.sha256(raw).hexdigest(), "application/json")
    assert summary is not None and summary["unreadable"] == "not valid JSON"


def test_a_form_keeps_its_fields_but_not_its_secrets() -> None:
    raw = b"grant_type=password&username=li.wei&password=hunter2&client_secret=s"
    summary = body_summary(raw, len(raw), hashlib.sha256(raw).hexdigest(), "application/x-www-form-urlencoded")
    assert summary is not None and summary["form"] == {"grant_type": "password", "username": "li.wei",
                                                       "password": REDACTED, "client_secret": REDACTED}
    assert "sha256" not in summary and "hunter2" not in json.dumps(summary)


def test_no_body_is_no_body() -> None:
    assert body_summary(b"", 0, hashlib.sha256(b"").hexdigest(), None) is None


def test_why_is_the_reason_header_first_then_the_body() -> None:
    assert reason_of("ticket%204711%20%E6%BC%8F%E6%B0%B4", {"note": "other"}) == "ticket 4711 漏水"
    assert reason_of(None, {"comment": "c", "note": "n"}) == "n"
    assert reason_of("  ", {"why": "w"}) == "w"
    assert reason_of(None, {"note": 3}) is None
    assert reason_of(None, [1]) is None


def test_the_objects_of_an_action_are_its_path_and_body_ids() -> None:
    assert objects_of({"account_id": "ACC-1"}, {"meter_id": "WM-1", "id": 7, "note": "x", "account_id": "ACC-1"}) == [
        "ACC-1", "WM-1", "7"]


def test_the_ids_of_an_answer_include_one_level_down_and_never_secrets() -> None:
    answer = {"command_id": "C-1", "secret_id": "nope", "removed": {"meter_id": "WM-1"},
              "lines": [{"event_id": "E-1"}, {"event_id": "E-2"}, {"event_id": "E-1"}], "count": 3}
    assert ids_in_answer(answer) == {"command_id": ["C-1"], "meter_id": ["WM-1"], "event_id": ["E-1", "E-2"]}
    assert ids_in_answer([{"iccid": "8986"}]) == {"iccid": ["8986"]}
    assert ids_in_answer("text") == {}


def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    proxies = trusted_networks("10.0.0.0/8, 192.168.1.1")
    assert client_address("203.0.113.5", "1.2.3.4", proxies) == "203.0.113.5"  # the client made it up
    assert client_address("10.0.0.2", "1.2.3.4, 198.51.100.7", proxies) == "198.51.100.7"
    assert client_address("10.0.0.2", "198.51.100.7, 192.168.1.1", proxies) == "198.51.100.7"  # two proxies
    assert client_address("10.0.0.2", "10.0.0.9", proxies) == "10.0.0.9"
    assert client_address("10.0.0.2", None, proxies) == "10.0.0.2"
    assert where_of("203.0.113.5", "1.2.3.4", "curl/8", proxies) == {
        "address": "203.0.113.5", "peer": "203.0.113.5", "user_agent": "curl/8", "forwarded_for": "1.2.3.4"}


def test_who_is_the_verified_caller_or_the_provider_of_a_public_route() -> None:
    operator = principal_of({"sub": "op-7", "tenant": "riverside", "roles": ["operator"], "sites": ["B1"],
                             "jti": "t-1"})
    assert who_of(operator) == {"subject": "op-7", "roles": ["operator"], "home_tenant": "riverside",
                                "tenant": "riverside", "token_id": "t-1", "sites": ["B1"]}
    assert who_of(None, public_reason="signed by the provider", provider="alipay") == {
        "subject": "alipay", "public": "signed by the provider"}
    assert who_of(None)["subject"] == "anonymous"
