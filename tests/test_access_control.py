"""The role matrix, on every route of every service API: who is let in, who is refused, and how.

Each service's API app is built in-process and every one of its routes is called with tokens of each
role. Authorisation is decided before anything else runs, so a call that is let in may still answer
404 or 422 (the dummy ids and empty bodies here); what is checked is that refused calls are refused
with 401 / 403 / 404 and allowed ones are not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from amiflow_runtime.auth import CUSTOMER_KEY, PUBLIC_KEY, Permission, route_permissions
from amiflow_runtime.testing import token_for
from fastapi import FastAPI

SERVICES = ("identity", "ingest", "vee", "billing", "commands", "notify")
ROLES = ("platform_admin", "tenant_admin", "operator", "integrator", "auditor", "customer")
OWN_ACCOUNT = "ACC-OWN"


def _api(service: str, folder: Path) -> FastAPI:
    import importlib

    main = importlib.import_module(f"{service}.main")
    config = importlib.import_module(f"{service}.config")
    settings_class = getattr(config, f"{service.capitalize()}Settings")
    return main.api(settings_class(database_url=f"sqlite+aiosqlite:///{folder / (service + '.db')}"))


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FastAPI]]:
    folder = tmp_path_factory.mktemp("access")
    yield {service: _api(service, folder) for service in SERVICES}


@dataclass(frozen=True)
class Route:
    """One operation of a service's OpenAPI document, with the amiflow extensions it declares."""

    path: str
    openapi_extra: dict[str, Any]


def _routes(app: FastAPI) -> list[tuple[str, Route]]:
    found = []
    for path, operations in app.openapi()["paths"].items():
        if path in ("/healthz", "/readyz", "/metrics"):
            continue
        for method, operation in operations.items():
            extra = {k: v for k, v in operation.items() if k.startswith("x-amiflow-")}
            found.append((method.upper(), Route(path, extra)))
    return found


def _path(route: Route, account: str) -> str:
    customer_param = route.openapi_extra.get(CUSTOMER_KEY)
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: account if m.group(1) == customer_param else "X-1", route.path)


def _token(role: str) -> str:
    return token_for("riverside", (role,), account_id=OWN_ACCOUNT if role == "customer" else None)


async def _call(app: FastAPI, method: str, path: str, headers: dict[str, str]) -> int:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        return (await http.request(method, path, headers=headers)).status_code


def _expected(role: str, method: str, route: Route) -> bool:
    """The matrix as the issue states it, written independently of the code's role table."""
    needed = route_permissions(method, route.openapi_extra)
    extra = route.openapi_extra or {}
    return {
        "platform_admin": True,
        "tenant_admin": True,
        "operator": bool(needed & {Permission.READ, Permission.OPERATE}),
        "integrator": bool(needed & {Permission.READ, Permission.INGEST}),
        "auditor": bool(needed & {Permission.READ, Permission.AUDIT}),
        # a customer: their own account's routes, and the few open to anyone signed in (who am I, my password)
        "customer": CUSTOMER_KEY in extra or Permission.OWN_ACCOUNT in needed,
    }[role]


@pytest.mark.parametrize("service", SERVICES)
async def test_every_route_refuses_callers_without_a_valid_token(apps: dict[str, FastAPI], service: str) -> None:
    app = apps[service]
    expired = token_for("riverside", ("platform_admin",), expires_in_s=-3600)
    foreign = token_for("riverside", ("platform_admin",), audience="another-platform")
    checked = 0
    for method, route in _routes(app):
        if PUBLIC_KEY in route.openapi_extra:
            continue
        path = _path(route, OWN_ACCOUNT)
        for headers in ({}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": f"Bearer {expired}"},
                        {"Authorization": f"Bearer {foreign}"}, {"Authorization": f"Basic {expired}"}):
            assert await _call(app, method, path, headers) == 401, (method, route.path, headers)
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("service", SERVICES)
async def test_the_role_matrix(apps: dict[str, FastAPI], service: str) -> None:
    app = apps[service]
    tokens = {role: _token(role) for role in ROLES}
    mismatches = []
    for method, route in _routes(app):
        if PUBLIC_KEY in route.openapi_extra:
            continue
        for role in ROLES:
            status = await _call(app, method, _path(route, OWN_ACCOUNT), {"Authorization": f"Bearer {tokens[role]}"})
            allowed = status not in (401, 403)  # a 404 here is the dummy id's, after being let in
            if allowed != _expected(role, method, route):
                mismatches.append(f"{role} {method} {route.path}: {status}")
    assert not mismatches, "\n".join(mismatches)


async def test_a_customer_gets_not_found_for_another_account(apps: dict[str, FastAPI]) -> None:
    token = {"Authorization": f"Bearer {_token('customer')}"}
    customer_routes = [(service, method, route) for service in SERVICES for method, route in _routes(apps[service])
                       if CUSTOMER_KEY in route.openapi_extra]
    assert len(customer_routes) >= 7  # account, balance, ledger, settlements, statements, supply, contacts
    for service, method, route in customer_routes:
        status = await _call(apps[service], method, _path(route, "ACC-SOMEONE-ELSE"), token)
        assert status == 404, (service, route.path, status)


async def test_a_token_of_one_tenant_cannot_name_another(apps: dict[str, FastAPI]) -> None:
    for role in ("tenant_admin", "operator", "auditor", "integrator"):
        headers = {"Authorization": f"Bearer {_token(role)}", "X-Tenant-Id": "hillside"}
        assert await _call(apps["billing"], "GET", "/v1/tariffs", headers) == 403
    admin = {"Authorization": f"Bearer {_token('platform_admin')}", "X-Tenant-Id": "hillside"}
    assert await _call(apps["billing"], "GET", "/v1/tariffs", admin) not in (401, 403)


def test_the_dangerous_routes_are_declared_as_expected(apps: dict[str, FastAPI]) -> None:
    """A handful of routes whose permission matters most, named here so a change to them is deliberate."""
    declared: dict[tuple[str, str], Any] = {}
    for service in SERVICES:
        for method, route in _routes(apps[service]):
            declared[(method, route.path)] = route_permissions(method, route.openapi_extra)
    assert declared[("POST", "/v1/commands")] == {Permission.OPERATE}
    assert declared[("PUT", "/v1/cut-off-policy")] == {Permission.CONFIGURE}
    assert declared[("POST", "/v1/tariffs")] == {Permission.CONFIGURE}
    assert declared[("POST", "/v1/readings")] == {Permission.INGEST, Permission.OPERATE}
    assert declared[("POST", "/v1/payments")] == {Permission.OPERATE}
    # Credits money: an operator, or a customer (the route itself lets one confirm only their own orders).
    assert declared[("POST", "/v1/payment-sandbox/{order_id}/confirm")] == {Permission.OPERATE, Permission.OWN_ACCOUNT}
    assert declared[("POST", "/v1/webhook-subscriptions")] == {Permission.CONFIGURE}
