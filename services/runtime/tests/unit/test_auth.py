"""Claims → caller, what each role may do on a route, and token checking against a JWKS file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from amiflow_runtime.auth import (
    ACCOUNT_DATA,
    CONFIGURATION,
    AuthError,
    KeysUnavailable,
    Permission,
    Role,
    TokenVerifier,
    WrongTenant,
    authorize,
    needs,
    principal_of,
    public_jwk,
    sign,
)
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER, AUDIENCE = "urn:amiflow:identity", "amiflow"


def claims(**kw: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "tenant": "riverside", "roles": ["operator"],
            "iat": now, "exp": now + 600, **kw}


def test_an_operator_is_limited_to_sites_and_duties() -> None:
    alice = principal_of(claims(sites=["B1", "B2"], duties=["water"]))
    assert alice.tenant == "riverside" and alice.roles == {Role.OPERATOR}
    assert alice.may(Permission.OPERATE) and not alice.may(Permission.CONFIGURE)
    assert alice.covers(site="B1", utility="water")
    assert not alice.covers(site="B3", utility="water")
    assert not alice.covers(site="B1", utility="electricity")
    assert not alice.covers(site=None, utility="water")  # an unplaced meter is not within "only these"


def test_an_admin_is_not_narrowed_by_sites_in_the_token() -> None:
    admin = principal_of(claims(roles=["tenant_admin", "operator"], sites=["B1"], duties=["gas"]))
    assert admin.sites is None and admin.duties is None
    assert admin.covers(site="anywhere", utility="electricity")


def test_scopes_narrow_and_never_widen() -> None:
    integrator = principal_of(claims(roles=["integrator"], scope="ingest configure"))
    assert integrator.permissions == {Permission.INGEST}


@pytest.mark.parametrize(("bad", "reason"), [
    ({"sub": ""}, "no subject"), ({"tenant": None}, "no tenant"), ({"roles": []}, "no role"),
    ({"roles": ["superuser"]}, "unknown role"), ({"roles": "operator", "duties": ["wind"]}, "unknown duty"),
    ({"roles": ["customer"]}, "must name their account"), ({"sites": [1, 2]}, "list of strings"),
    ({"tenant": "river side"}, "tenant is not a valid identifier"),
    ({"sub": "a\nb"}, "subject is not a valid identifier"),
])
def test_malformed_claims_are_refused_with_the_reason(bad: dict[str, Any], reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        principal_of(claims(**bad))


def test_only_a_platform_admin_acts_in_another_tenant() -> None:
    root = principal_of(claims(roles=["platform_admin"], tenant="platform"), acting_tenant="riverside")
    assert root.tenant == "riverside" and root.home_tenant == "platform"
    with pytest.raises(WrongTenant):
        principal_of(claims(roles=["tenant_admin"]), acting_tenant="hillside")
    assert principal_of(claims(), acting_tenant="riverside").tenant == "riverside"  # naming one's own is fine


def test_routes_need_read_or_operate_unless_they_say_otherwise() -> None:
    auditor = principal_of(claims(roles=["auditor"]))
    assert authorize(auditor, "GET", None, {}).allowed
    refused = authorize(auditor, "POST", None, {})
    assert (refused.allowed, refused.status) == (False, 403) and "operate" in refused.reason
    assert not authorize(principal_of(claims()), "PUT", CONFIGURATION, {}).allowed
    assert authorize(principal_of(claims(roles=["tenant_admin"])), "PUT", CONFIGURATION, {}).allowed
    either = needs(Permission.INGEST, Permission.OPERATE)
    assert authorize(principal_of(claims(roles=["integrator"])), "POST", either, {}).allowed
    assert authorize(principal_of(claims()), "POST", either, {}).allowed
    assert not authorize(auditor, "POST", either, {}).allowed


def test_a_customer_sees_their_own_account_and_no_other() -> None:
    customer = principal_of(claims(roles=["customer"], account_id="ACC-1"))
    assert authorize(customer, "GET", ACCOUNT_DATA, {"account_id": "ACC-1"}).allowed
    other = authorize(customer, "GET", ACCOUNT_DATA, {"account_id": "ACC-2"})
    assert (other.allowed, other.status) == (False, 404)  # not even that it exists
    assert authorize(customer, "GET", None, {}).status == 403  # routes not meant for customers
    # staff read the same route under their read permission
    assert authorize(principal_of(claims(roles=["auditor"])), "GET", ACCOUNT_DATA, {"account_id": "ACC-2"}).allowed


# --- token checking -----------------------------------------------------------------------------

def _publish(path: Path, *keys: tuple[Any, str]) -> None:
    path.write_text(json.dumps({"keys": [public_jwk(key, kid) for key, kid in keys]}))


async def test_tokens_verify_against_the_published_keys_and_rotation_is_picked_up(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    _publish(jwks, (old, "k1"))
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks, refetch_min_s=0)
    assert (await verifier.claims(sign(claims(), old, "k1")))["sub"] == "alice"
    with pytest.raises(AuthError, match="does not publish"):
        await verifier.claims(sign(claims(), new, "k2"))
    _publish(jwks, (old, "k1"), (new, "k2"))  # rotation: the new key is published next to the old
    assert (await verifier.claims(sign(claims(), new, "k2")))["sub"] == "alice"
    assert (await verifier.claims(sign(claims(), old, "k1")))["sub"] == "alice"


async def test_rsa_keys_of_an_external_issuer_work_too(tmp_path: Path) -> None:
    jwks, key = tmp_path / "jwks.json", rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _publish(jwks, (key, "rsa-1"))
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks)
    assert (await verifier.claims(sign(claims(), key, "rsa-1")))["tenant"] == "riverside"


@pytest.mark.parametrize(("change", "reason"), [
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"aud": "someone-else"}, "audience"),
    ({"iss": "https://evil.example"}, "not issued by"),
])
async def test_expired_foreign_or_misaddressed_tokens_are_refused(tmp_path: Path, change: dict[str, Any],
                                                                   reason: str) -> None:
    jwks, key = tmp_path / "jwks.json", ec.generate_private_key(ec.SECP256R1())
    _publish(jwks, (key, "k1"))
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks)
    with pytest.raises(AuthError, match=reason):
        await verifier.claims(sign(claims(**change), key, "k1"))


async def test_forged_and_unsigned_tokens_are_refused(tmp_path: Path) -> None:
    import jwt

    jwks, key = tmp_path / "jwks.json", ec.generate_private_key(ec.SECP256R1())
    _publish(jwks, (key, "k1"))
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks)
    intruder = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(AuthError, match="not valid"):  # right key id, wrong key
        await verifier.claims(sign(claims(), intruder, "k1"))
    with pytest.raises(AuthError, match="not accepted"):  # alg=none
        await verifier.claims(jwt.encode(claims(), None, algorithm="none", headers={"kid": "k1"}))
    with pytest.raises(AuthError, match="not accepted"):  # a shared secret: anyone holding the JWKS could sign
        await verifier.claims(jwt.encode(claims(), "k" * 32, algorithm="HS256", headers={"kid": "k1"}))
    with pytest.raises(AuthError, match="not a JWT"):
        await verifier.claims("garbage")


async def test_missing_keys_are_the_platforms_problem_not_the_callers(tmp_path: Path) -> None:
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_file=tmp_path / "absent.json",
                             jwks_url="http://127.0.0.1:9/jwks.json")
    with pytest.raises(KeysUnavailable):
        await verifier.claims(sign(claims(), ec.generate_private_key(ec.SECP256R1()), "k1"))
