"""The OAuth 2.0 token endpoint (RFC 6749) and the documents verifiers read: JWKS and discovery."""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from amiflow_runtime.audit_request import client_address, trusted_networks
from amiflow_runtime.auth import Permission, public
from amiflow_runtime.http import RuntimeDep
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from identity.adapters.crypto import SealedKeyUnreadable
from identity.core.keys import jwks
from identity.core.tokens import InvalidClient, InvalidRequest, OAuthError, UnsupportedGrantType
from identity.grants import TokenIssuer

log = logging.getLogger("identity.oauth")
router = APIRouter(tags=["tokens"])

TOKEN_REQUESTS = Counter("identity_token_requests_total", "Token requests by grant type and outcome "
                         "(issued, or the OAuth error)", ["grant_type", "outcome"])
GRANT_TYPES = ("password", "client_credentials")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_FORM_BYTES = 8192
MAX_FORM_FIELDS = 20  # RFC 6749 §5.1: tokens are never cached

_TOKEN_FORM = {"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
    "type": "object", "required": ["grant_type"],
    "properties": {
        "grant_type": {"type": "string", "enum": list(GRANT_TYPES)},
        "username": {"type": "string", "description": "password grant"},
        "password": {"type": "string", "format": "password", "description": "password grant"},
        "client_id": {"type": "string", "description": "client_credentials grant, unless sent by HTTP Basic"},
        "client_secret": {"type": "string", "format": "password",
                          "description": "client_credentials grant, unless sent by HTTP Basic"},
        "scope": {"type": "string", "description": "space-separated permissions to narrow the token to: "
                                                   + ", ".join(p.value for p in Permission)},
    }}}}}}


def _refusal(exc: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    if isinstance(exc, InvalidClient):
        headers["WWW-Authenticate"] = 'Basic realm="amiflow", charset="UTF-8"'
    if exc.retry_after_s:
        headers["Retry-After"] = str(exc.retry_after_s)
    return JSONResponse({"error": exc.error, "error_description": exc.description}, status_code=exc.status,
                        headers=headers)


Form = dict[str, list[str]]


def _single(form: Form, name: str) -> str | None:
    values = form.get(name, [])
    if len(values) > 1:
        raise InvalidRequest(f"{name} is given more than once")  # RFC 6749 §3.2
    return values[0] if values else None


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("clients authenticate with HTTP Basic or the client_id and client_secret fields")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("the Basic credentials are not base64 of client_id:client_secret") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidClient("the Basic credentials are not base64 of client_id:client_secret")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before they are joined.
    return unquote_plus(client_id), unquote_plus(secret)


async def _form(request: Request) -> Form:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("the token request is a form: Content-Type application/x-www-form-urlencoded")
    # Read with a cap: the endpoint is open to anyone, and a token request is a few hundred bytes.
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidRequest(f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body),
                          max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the form cannot be read (UTF-8, application/x-www-form-urlencoded)") from None
    form: Form = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def _grant_type(form: Form) -> str:
    grant_type = _single(form, "grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is missing")
    if grant_type not in GRANT_TYPES:
        raise UnsupportedGrantType(f"grant_type must be one of {', '.join(GRANT_TYPES)}")
    return grant_type


async def _answer(request: Request, form: Form, grant_type: str, issuer: TokenIssuer) -> dict[str, Any]:
    scope = _single(form, "scope")
    # The throttle counts per client address: behind a trusted proxy (AMIFLOW_TRUSTED_PROXIES), the one it
    # vouches for in X-Forwarded-For, else the TCP peer — never a header anyone could make up.
    trusted = trusted_networks(request.app.state.settings.trusted_proxies)
    peer = request.client.host if request.client else None
    address = client_address(peer, request.headers.get("x-forwarded-for"), trusted) or "unknown"
    if grant_type == "password":
        username, password = _single(form, "username"), _single(form, "password")
        if not username or not password:
            raise InvalidRequest("the password grant needs username and password")
        basic_sent = request.headers.get("authorization", "").lower().startswith("basic ")
        if basic_sent or _single(form, "client_secret") is not None:
            raise InvalidRequest("the password grant takes no client secret: the console and portal are public "
                                 "clients, and a machine uses client_credentials")
        return await issuer.password_grant(username, password, scope, address)
    basic = _basic_credentials(request)
    form_id, form_secret = _single(form, "client_id"), _single(form, "client_secret")
    if basic is not None and form_secret is not None:
        raise InvalidRequest("the client authenticates once: by HTTP Basic or by form fields, not both")
    client_id, secret = basic if basic is not None else (form_id, form_secret)
    if basic is not None and form_id is not None and form_id != client_id:
        raise InvalidRequest("client_id differs from the one in the Basic credentials")
    if not client_id or not secret:
        raise InvalidClient("client_credentials needs the client id and secret (HTTP Basic or form fields)")
    return await issuer.client_grant(client_id, secret, scope, address)


@router.post("/oauth/token", summary="Issue an access token (OAuth 2.0)",
             openapi_extra={**public("the caller authenticates with a password or client secret in the request"),
                            **_TOKEN_FORM},
             responses={400: {"description": "RFC 6749 error: invalid_request, invalid_grant, "
                                             "unsupported_grant_type, invalid_scope"},
                        401: {"description": "invalid_client: the client could not be authenticated"}})
async def token(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """`password` for people (operators, admins, auditors, customers), `client_credentials` for other systems.

    The token is a JWT for the credential's own tenant; `scope` narrows it to some of its permissions.
    Failed attempts lock the username, client id or address for a while (Retry-After says how long).
    """
    grant_type = "unknown"  # the metric's label until the form says which
    try:
        form = await _form(request)
        grant_type = _grant_type(form)
        answer = await _answer(request, form, grant_type, TokenIssuer(runtime))
    except OAuthError as exc:
        TOKEN_REQUESTS.labels(grant_type, exc.error).inc()
        return _refusal(exc)
    except SealedKeyUnreadable as exc:
        log.error("no token can be signed: %s", exc)
        TOKEN_REQUESTS.labels(grant_type, "unavailable").inc()
        return JSONResponse({"error": "temporarily_unavailable",
                             "error_description": "tokens cannot be signed right now"}, status_code=503,
                            headers=NO_STORE)
    TOKEN_REQUESTS.labels(grant_type, "issued").inc()
    return JSONResponse(answer, headers=NO_STORE)


@router.get("/.well-known/jwks.json", summary="The public keys tokens are signed with (JWKS)",
            openapi_extra=public("public keys, for anyone who checks tokens"))
async def jwks_document(runtime: RuntimeDep) -> JSONResponse:
    """The active signing key and the retired ones whose tokens may still be alive."""
    keys = await runtime.keyring.published()
    max_age = runtime.identity_settings.jwks_max_age_s
    return JSONResponse(jwks(keys), headers={"Cache-Control": f"public, max-age={max_age}"})


@router.get("/.well-known/openid-configuration", summary="Where the token endpoint and keys are (discovery)",
            openapi_extra=public("a description of this issuer, for anyone who checks tokens"))
async def discovery(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Issuer, token endpoint, JWKS address, grant types and scopes (OpenID Connect Discovery / RFC 8414 fields)."""
    settings = runtime.identity_settings
    base = (settings.public_url or str(request.base_url)).rstrip("/")
    return JSONResponse({
        "issuer": settings.auth_issuer,
        "token_endpoint": f"{base}/oauth/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": [p.value for p in Permission],
    }, headers={"Cache-Control": f"public, max-age={settings.jwks_max_age_s}"})
