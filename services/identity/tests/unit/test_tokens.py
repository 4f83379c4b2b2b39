"""Token claims follow the runtime's contract, and a scope only ever narrows what a credential allows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from amiflow_runtime.auth import Permission, Role, principal_of
from identity.core.tokens import (
    Grantee,
    InvalidScope,
    access_token_claims,
    granted_scope,
    parse_scope,
    token_answer,
)

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
OPERATOR = Grantee("alice", "riverside", frozenset({Role.OPERATOR}), sites=frozenset({"b2", "b1"}),
                   duties=frozenset({"water"}))


def claims(grantee: Grantee, scope: frozenset[Permission] | None = None) -> dict[str, object]:
    return access_token_claims(grantee, scope=scope, issuer="urn:amiflow:identity", audience="amiflow", now=NOW,
                               lifetime_s=900, token_id="t-1")


def test_an_operators_claims_carry_tenant_roles_sites_duties_and_times() -> None:
    issued = claims(OPERATOR)
    stamp = int(NOW.timestamp())
    assert issued == {"iss": "urn:amiflow:identity", "aud": "amiflow", "sub": "alice", "tenant": "riverside",
                      "roles": ["operator"], "sites": ["b1", "b2"], "duties": ["water"], "iat": stamp,
                      "nbf": stamp, "exp": stamp + 900, "jti": "t-1"}


def test_the_runtime_reads_the_claims_back_as_the_same_caller() -> None:
    caller = principal_of(claims(OPERATOR))
    assert (caller.subject, caller.tenant, caller.roles) == ("alice", "riverside", {Role.OPERATOR})
    assert caller.sites == {"b1", "b2"} and caller.duties == {"water"}
    assert caller.permissions == {Permission.READ, Permission.OPERATE}


def test_a_customers_claims_name_their_account() -> None:
    customer = Grantee("c-17", "riverside", frozenset({Role.CUSTOMER}), account_id="acc-17")
    issued = claims(customer)
    assert issued["account_id"] == "acc-17" and "sites" not in issued and "scope" not in issued
    assert principal_of(issued).account_id == "acc-17"


def test_a_requested_scope_within_the_roles_narrows_the_token() -> None:
    scope = granted_scope(OPERATOR, parse_scope("read"))
    issued = claims(OPERATOR, scope)
    assert issued["scope"] == "read"
    assert principal_of(issued).permissions == {Permission.READ}


def test_a_scope_beyond_the_roles_is_refused() -> None:
    with pytest.raises(InvalidScope, match="not allowed manage_access"):
        granted_scope(OPERATOR, parse_scope("read manage_access"))


@pytest.mark.parametrize(("text", "reason"), [("", "empty"), ("   ", "empty"), ("read admin", "unknown scope admin")])
def test_a_malformed_scope_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidScope, match=reason):
        parse_scope(text)


def test_no_scope_asked_means_no_narrowing() -> None:
    assert parse_scope(None) is None
    assert granted_scope(OPERATOR, None) is None


def test_a_client_with_scopes_always_gets_them_in_its_tokens() -> None:
    integrator = Grantee("client_1", "riverside", frozenset({Role.TENANT_ADMIN}),
                         scopes=frozenset({Permission.INGEST, Permission.READ}))
    assert granted_scope(integrator, None) == {Permission.INGEST, Permission.READ}
    assert granted_scope(integrator, parse_scope("ingest")) == {Permission.INGEST}
    with pytest.raises(InvalidScope):
        granted_scope(integrator, parse_scope("configure"))  # its role would allow it, its scopes do not


def test_the_answer_says_bearer_lifetime_and_scope_only_when_narrowed() -> None:
    assert token_answer("tok", lifetime_s=900, scope=None) == {"access_token": "tok", "token_type": "Bearer",
                                                               "expires_in": 900}
    assert token_answer("tok", lifetime_s=60, scope=frozenset({Permission.READ}))["scope"] == "read"
