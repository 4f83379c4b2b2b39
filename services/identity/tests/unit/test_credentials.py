"""Credentials must be coherent (a customer names an account, only clients have scopes) and passwords strong."""

from __future__ import annotations

import pytest
from amiflow_runtime.auth import Permission, Role
from identity.core.credentials import InvalidCredential, checked_password, checked_reach, normal_username


@pytest.mark.parametrize(("text", "name"), [("Alice", "alice"), (" bob@riverside.cn ", "bob@riverside.cn"),
                                            ("op-7.night+1", "op-7.night+1")])
def test_usernames_are_kept_in_lower_case(text: str, name: str) -> None:
    assert normal_username(text) == name


@pytest.mark.parametrize("text", ["", "-alice", "john_doe", "client_0a1b", "a" * 65, "ali ce", "Ålice"])
def test_a_name_that_cannot_be_a_username_is_refused(text: str) -> None:
    with pytest.raises(InvalidCredential, match="username"):
        normal_username(text)


def test_an_operator_may_be_limited_to_sites_and_duties() -> None:
    reach = checked_reach([Role.OPERATOR], sites=["b1"], duties=["water", "heat"])
    assert reach.sites == {"b1"} and reach.duties == {"water", "heat"} and reach.account_id is None


@pytest.mark.parametrize(("kw", "reason"), [
    ({"roles": []}, "at least one role"),
    ({"roles": [Role.OPERATOR], "duties": ["steam"]}, "unknown duty steam"),
    ({"roles": [Role.OPERATOR], "sites": ["b 1"]}, "not a site id"),
    ({"roles": [Role.CUSTOMER]}, "names their account"),
    ({"roles": [Role.CUSTOMER, Role.OPERATOR], "account_id": "a1"}, "holds no other role"),
    ({"roles": [Role.OPERATOR], "account_id": "a1"}, "only a customer"),
    ({"roles": [Role.INTEGRATOR], "scopes": [Permission.READ]}, "scopes belong to clients"),
    ({"roles": [Role.CUSTOMER], "account_id": "a1", "for_client": True}, "not as a client"),
    ({"roles": [Role.INTEGRATOR], "scopes": [], "for_client": True}, "cannot be empty"),
])
def test_an_incoherent_credential_is_refused_with_the_reason(kw: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidCredential, match=reason):
        checked_reach(**kw)  # type: ignore[arg-type]


def test_a_client_may_carry_scopes() -> None:
    reach = checked_reach([Role.INTEGRATOR], scopes=[Permission.INGEST], for_client=True)
    assert reach.scopes == {Permission.INGEST}


@pytest.mark.parametrize(("password", "reason"), [
    ("short", "at least 12"),
    ("x" * 300, "at most 256"),
    ("Password", "at least 12"),
    ("aaaaaaaaaaaaaaaa", "too easy"),
    ("alice-in-wonderland", "too easy"),
    ("123456789012", "too easy"),
])
def test_a_weak_password_is_refused_with_the_rule_it_breaks(password: str, reason: str) -> None:
    with pytest.raises(InvalidCredential, match=reason):
        checked_password(password, username="alice", min_length=12)


def test_a_long_varied_password_is_accepted() -> None:
    assert checked_password("correct horse battery", username="alice", min_length=12) == "correct horse battery"
