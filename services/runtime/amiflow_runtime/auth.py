"""Who is calling: bearer tokens (JWT) checked against published keys (JWKS), roles and what they allow.

Every service API checks the caller the same way; the identity service issues the tokens (any OIDC
issuer whose tokens carry these claims works too). The pure part — claims → Principal, and what a
principal may do on a route — is here with no I/O, so the role matrix is tested without servers.

Claims of an amiflow access token:
  iss, aud ("amiflow"), sub, exp, iat, jti — standard;
  tenant — the tenant the caller belongs to;
  roles — any of Role;
  scope — optional space-separated Permission names that narrow what the roles allow (OAuth scopes);
  sites — optional buildings an operator is limited to (absent: all of the tenant's);
  duties — optional utilities an operator is limited to (water, electricity, gas, heat);
  account_id — a customer's own account.

Routes say what they need in their OpenAPI extension `x-amiflow-permission` (see `needs`); a route
that says nothing needs `read` for GET/HEAD and `operate` otherwise, so a new route is never open by
accident. `x-amiflow-public` marks the few routes that authenticate otherwise (a payment provider's
signed callback, the token endpoint); `x-amiflow-customer` names the path parameter that must be the
customer's own account for a customer to call the route.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import jwt
from amiflow_schemas.primitives import Identifier
from pydantic import TypeAdapter, ValidationError

log = logging.getLogger("amiflow.auth")

# Asymmetric only: a service that checks tokens must never hold a key that can make them.
ALGORITHMS = ("ES256", "RS256", "PS256", "EdDSA")
UTILITIES = frozenset({"water", "electricity", "gas", "heat"})
# Tenant ids and subjects become event fields, Kafka keys and log fields: the events' own rule applies.
_IDENTIFIER = TypeAdapter(Identifier)


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"  # runs the platform: every tenant, chosen per call by X-Tenant-Id
    TENANT_ADMIN = "tenant_admin"  # a utility's or property manager's administrator
    OPERATOR = "operator"  # day-to-day operations, limited to sites and duties
    INTEGRATOR = "integrator"  # another system: sends readings, reads data
    AUDITOR = "auditor"  # reads everything and the audit trail, changes nothing
    CUSTOMER = "customer"  # one account holder: their own account only


class Permission(StrEnum):
    READ = "read"  # the tenant's operational data
    INGEST = "ingest"  # readings and uploads from other systems
    OPERATE = "operate"  # commands, edits, payments and corrections, registry and account changes
    CONFIGURE = "configure"  # tariffs, policies, rules, channels: what the platform does by itself
    AUDIT = "audit"  # the audit trail
    MANAGE_ACCESS = "manage_access"  # credentials and roles
    OWN_ACCOUNT = "own_account"  # a customer's view of their own account


ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.PLATFORM_ADMIN: frozenset(Permission),
    Role.TENANT_ADMIN: frozenset(Permission) - {Permission.OWN_ACCOUNT},
    Role.OPERATOR: frozenset({Permission.READ, Permission.OPERATE}),
    Role.INTEGRATOR: frozenset({Permission.READ, Permission.INGEST}),
    Role.AUDITOR: frozenset({Permission.READ, Permission.AUDIT}),
    Role.CUSTOMER: frozenset({Permission.OWN_ACCOUNT}),
}


class AuthError(Exception):
    """The token cannot be accepted (answered 401 with the reason)."""


class WrongTenant(Exception):
    """A valid token used for a tenant that is not the caller's (answered 403, naming no object)."""


class KeysUnavailable(Exception):
    """The keys to check tokens with cannot be had right now (answered 503: our problem, not the caller's)."""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    subject: str
    home_tenant: str
    tenant: str  # the tenant this call acts in: home_tenant, or the one a platform admin chose
    roles: frozenset[Role]
    permissions: frozenset[Permission]
    sites: frozenset[str] | None  # None: every site of the tenant
    duties: frozenset[str] | None  # None: every utility
    account_id: str | None
    token_id: str | None

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions

    def covers(self, *, site: str | None = None, utility: str | None = None) -> bool:
        """True when an object in `site` of `utility` is within this caller's sites and duties.

        An object without a site is outside a site-limited operator's reach: being limited means
        "only these", and an unplaced meter is not one of them.
        """
        if self.sites is not None and (site is None or site not in self.sites):
            return False
        return self.duties is None or (utility is not None and utility in self.duties)

    @property
    def is_platform_admin(self) -> bool:
        return Role.PLATFORM_ADMIN in self.roles

    @property
    def limited(self) -> bool:
        """True when sites or duties narrow what this caller may touch."""
        return self.sites is not None or self.duties is not None

    def may_sign_as(self, name: str) -> bool:
        """May an action be recorded under `name`? An operator signs only with their own name (the token's
        subject); an administrator may record on behalf of someone — the audit trail names the administrator."""
        return name == self.subject or bool(self.roles & {Role.PLATFORM_ADMIN, Role.TENANT_ADMIN})


def _strings(claims: Mapping[str, Any], name: str) -> frozenset[str] | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise AuthError(f"claim {name!r} must be a list of strings")
    return frozenset(value)


def principal_of(claims: Mapping[str, Any], *, acting_tenant: str | None = None) -> Principal:
    """The caller a verified token's claims describe, acting in `acting_tenant` when one is asked for.

    Only a platform admin may act in another tenant; anyone else naming a tenant that is not theirs
    is refused (the reason says so, and names no object of that tenant).
    """
    subject, tenant = claims.get("sub"), claims.get("tenant")
    if not isinstance(subject, str) or not subject:
        raise AuthError("the token names no subject")
    if not isinstance(tenant, str) or not tenant:
        raise AuthError("the token names no tenant")
    for name, value in (("subject", subject), ("tenant", tenant)):
        try:
            _IDENTIFIER.validate_python(value)
        except ValidationError:
            raise AuthError(f"the token's {name} is not a valid identifier") from None
    try:
        roles = frozenset(Role(r) for r in (_strings(claims, "roles") or ()))
    except ValueError as exc:
        raise AuthError(f"unknown role in token: {exc}") from None
    if not roles:
        raise AuthError("the token carries no role")
    allowed = frozenset().union(*(ROLE_PERMISSIONS[r] for r in roles))
    scopes = _strings(claims, "scope")
    if scopes is not None:  # OAuth scopes narrow what the roles allow, never widen it
        allowed = allowed & frozenset(p for p in Permission if p.value in scopes)
    duties = _strings(claims, "duties")
    if duties is not None and not duties <= UTILITIES:
        raise AuthError(f"unknown duty in token: {', '.join(sorted(duties - UTILITIES))}")
    account = claims.get("account_id")
    if Role.CUSTOMER in roles and not isinstance(account, str):
        raise AuthError("a customer's token must name their account")
    acting = tenant
    if acting_tenant and acting_tenant != tenant:
        try:
            _IDENTIFIER.validate_python(acting_tenant)
        except ValidationError:
            raise AuthError("X-Tenant-Id is not a valid identifier") from None
        if Role.PLATFORM_ADMIN not in roles:
            raise WrongTenant("this token is for another tenant")
        acting = acting_tenant
    limited = Role.OPERATOR in roles and not roles & {Role.PLATFORM_ADMIN, Role.TENANT_ADMIN}
    return Principal(
        subject=subject, home_tenant=tenant, tenant=acting, roles=roles, permissions=allowed,
        # Sites and duties limit operators; an admin's token is not narrowed by them.
        sites=_strings(claims, "sites") if limited else None,
        duties=duties if limited else None,
        account_id=account if isinstance(account, str) else None,
        token_id=claims.get("jti") if isinstance(claims.get("jti"), str) else None,
    )


# --- What a route needs ---------------------------------------------------------------------------

PERMISSION_KEY = "x-amiflow-permission"
PUBLIC_KEY = "x-amiflow-public"
CUSTOMER_KEY = "x-amiflow-customer"


def needs(*permissions: Permission, customer_account_param: str | None = None) -> dict[str, Any]:
    """`openapi_extra` of a route that needs any one of `permissions` (shown in the OpenAPI document too).

    `customer_account_param` lets a customer call the route for the account in that path parameter.
    """
    if not permissions:
        raise ValueError("a route needs at least one permission")
    extra: dict[str, Any] = {PERMISSION_KEY: [p.value for p in permissions]}
    if customer_account_param:
        extra[CUSTOMER_KEY] = customer_account_param
    return extra


# The usual declarations, named: tenant configuration; an account's data its holder may read too.
CONFIGURATION = needs(Permission.CONFIGURE)
ACCOUNT_DATA = needs(Permission.READ, customer_account_param="account_id")


def public(reason: str) -> dict[str, Any]:
    """`openapi_extra` of a route that authenticates its caller another way (the reason says how)."""
    return {PUBLIC_KEY: reason}


def route_permissions(method: str, extra: Mapping[str, Any] | None) -> frozenset[Permission]:
    """What a route needs (any one of): its declared permissions, else read for GET/HEAD, operate otherwise."""
    declared = (extra or {}).get(PERMISSION_KEY)
    if declared:
        return frozenset(Permission(p) for p in ([declared] if isinstance(declared, str) else declared))
    return frozenset({Permission.READ if method.upper() in ("GET", "HEAD") else Permission.OPERATE})


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    status: int = 200  # 403 refused, 404 an object the caller may not know of
    reason: str = ""


def authorize(principal: Principal, method: str, extra: Mapping[str, Any] | None,
              path_params: Mapping[str, Any]) -> Verdict:
    """May `principal` call a route with this method, OpenAPI extension and these path parameters?"""
    extra = extra or {}
    customer_param = extra.get(CUSTOMER_KEY)
    if customer_param and principal.may(Permission.OWN_ACCOUNT) and principal.roles == {Role.CUSTOMER}:
        # A customer learns nothing of other accounts: another account id is "not found".
        if str(path_params.get(customer_param)) == principal.account_id:
            return Verdict(True)
        return Verdict(False, 404, "not found")
    needed = route_permissions(method, extra)
    if needed & principal.permissions:
        return Verdict(True)
    wanted = " or ".join(sorted(p.value for p in needed))
    return Verdict(False, 403, f"this needs the {wanted} permission, which the caller's roles "
                               f"({', '.join(sorted(principal.roles))}) and scopes do not give")


# --- Checking tokens ------------------------------------------------------------------------------

# A place keys come from: returns a JWKS document, or raises KeysUnavailable saying why it cannot.
KeySource = Callable[[], Awaitable[Any]]


def jwks_file_source(path: Path) -> KeySource:
    """The keys of a JWKS file (a mounted secret, or the test suite's keys)."""

    async def read() -> Any:
        try:
            return json.loads(await asyncio.to_thread(path.read_text))
        except (OSError, ValueError) as exc:
            raise KeysUnavailable(f"the JWKS file {path} cannot be read: {exc}") from exc

    return read


def jwks_url_source(url: str) -> KeySource:
    """The keys an issuer publishes at `url`."""

    async def fetch() -> Any:
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                answer = await client.get(url)
                answer.raise_for_status()
                return answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise KeysUnavailable(f"the JWKS at {url} cannot be fetched: {exc}") from exc

    return fetch


class TokenVerifier:
    """Checks bearer tokens against the keys of its sources (a JWKS URL, a JWKS file, or any KeySource),
    cached.

    Keys rotate: a token signed with a key id not in the cache makes one refetch (at most every
    `refetch_min_s`), so a new key is picked up at once and a stream of forged key ids cannot turn into
    a stream of fetches. The cache is refreshed every `refresh_s` regardless, to drop retired keys.
    A source that fails leaves the others' keys usable; with none, KeysUnavailable (our problem, 503).
    """

    def __init__(self, *, issuer: str, audience: str, jwks_url: str | None = None, jwks_file: Path | None = None,
                 sources: Sequence[KeySource] = (), leeway_s: float = 30.0, refresh_s: float = 300.0,
                 refetch_min_s: float = 10.0) -> None:
        self.sources = [*sources, *([jwks_file_source(jwks_file)] if jwks_file else []),
                        *([jwks_url_source(jwks_url)] if jwks_url else [])]
        if not self.sources:
            raise ValueError("tokens cannot be checked without a JWKS URL, file or other key source")
        self.issuer, self.audience = issuer, audience
        self.leeway_s, self.refresh_s, self.refetch_min_s = leeway_s, refresh_s, refetch_min_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")

    async def _documents(self) -> list[Any]:
        documents: list[Any] = []
        problems: list[str] = []
        for source in self.sources:
            try:
                documents.append(await source())
            except KeysUnavailable as exc:
                problems.append(str(exc))
        if not documents:
            raise KeysUnavailable("; ".join(problems))
        if problems:
            log.warning("token keys partly unavailable: %s", "; ".join(problems))
        return documents

    async def _load(self) -> None:
        keys: dict[str, jwt.PyJWK] = {}
        for document in await self._documents():
            for entry in document.get("keys", []) if isinstance(document, dict) else []:
                if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or not entry.get("kid"):
                    continue
                try:
                    keys[str(entry["kid"])] = jwt.PyJWK.from_dict(entry)
                except jwt.PyJWTError as exc:
                    log.warning("JWKS key %s ignored: %s", entry.get("kid"), exc)
        self._keys, self._fetched_at = keys, time.monotonic()

    def _stale(self) -> bool:
        return time.monotonic() - self._fetched_at > self.refresh_s

    async def key_for(self, kid: str) -> jwt.PyJWK:
        if self._stale():
            await self._load()
        if kid not in self._keys and time.monotonic() - self._fetched_at >= self.refetch_min_s:
            await self._load()  # a key rotated in since the last fetch
        try:
            return self._keys[kid]
        except KeyError:
            raise AuthError("the token is signed with a key this platform does not publish") from None

    async def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of `token`, or AuthError with the reason."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("the bearer token is not a JWT") from None
        if header.get("alg") not in ALGORITHMS:
            raise AuthError(f"tokens signed with {header.get('alg')!r} are not accepted")
        key = await self.key_for(str(header.get("kid") or ""))
        try:
            return jwt.decode(token, key=key, algorithms=list(ALGORITHMS), audience=self.audience,
                              issuer=self.issuer, leeway=self.leeway_s,
                              options={"require": ["exp", "iat", "sub", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("the token is not meant for this platform (audience)") from None
        except jwt.InvalidIssuerError:
            raise AuthError("the token was not issued by this platform's identity service") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"the token is not valid: {exc}") from None


def public_jwk(key: Any, kid: str) -> dict[str, Any]:
    """The public half of a private or public EC/RSA key as a JWK with its key id (for a JWKS)."""
    public_key = key.public_key() if hasattr(key, "private_numbers") else key
    algorithm = jwt.algorithms.ECAlgorithm if hasattr(public_key, "curve") else jwt.algorithms.RSAAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(public_key, as_dict=True)
    jwk.update({"kid": kid, "use": "sig", "alg": "ES256" if hasattr(public_key, "curve") else "RS256"})
    return jwk


def sign(claims: Mapping[str, Any], private_key: Any, kid: str) -> str:
    """A token over `claims` signed with `private_key` (ES256 for EC keys, RS256 for RSA)."""
    algorithm = "ES256" if hasattr(private_key, "curve") else "RS256"
    return jwt.encode(dict(claims), private_key, algorithm=algorithm, headers={"kid": kid})


def iter_roles(values: Iterable[str]) -> list[Role]:
    """Role names checked against Role (for CLIs and APIs that take them as text)."""
    return [Role(v) for v in values]
