"""Running one service's API for schemathesis: the real app on PostgreSQL and the session broker.

Each test module names its service in ``SERVICE`` (an ``ApiUnderTest``) and loads its schema at
import from ``blueprint()`` — the same app built on a database it never opens — so pytest has one
test per API operation; ``answers_as_documented`` and ``refused_without_a_token`` are the checks.
The ``live_app`` fixture builds the app again on a fresh PostgreSQL database, migrated, and
schemathesis sends each case to it in-process; its lifespan (the runtime: Kafka producer, relay)
starts on the first call and is stopped when the module is done.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.testing import auth_headers, create_database
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

# Cases per operation in `make test` (the no-token run takes a third); AMIFLOW_API_FUZZ_EXAMPLES=25 or more
# for a longer hunt. The figures in the README's reliability section say which count they were made with.
EXAMPLES = int(os.environ.get("AMIFLOW_API_FUZZ_EXAMPLES", "12"))
EXAMPLES_WITHOUT_TOKEN = max(3, EXAMPLES // 3)

OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass(frozen=True)
class ApiUnderTest:
    """How to build one service's API process."""

    name: str
    api: Callable[[ServiceSettings], FastAPI]
    settings: Callable[..., ServiceSettings]
    options: tuple[tuple[str, Any], ...] = ()

    def blueprint(self) -> FastAPI:
        """The app as its OpenAPI document describes it; never started, its database never opened."""
        return self.api(self.settings(database_url="sqlite+aiosqlite:///:memory:", **dict(self.options)))


def openapi_tests(service: ApiUnderTest) -> tuple[Callable[..., None], Callable[..., None]]:
    """The two schemathesis tests of one service's OpenAPI, for its test module to bind as test_* names:
    every operation as an administrator (no 5xx, answers as documented), and without a token (401)."""
    document = service.blueprint().openapi()
    schema = schemathesis.openapi.from_dict(document)
    # Without a token only well-formed calls say something: a broken one may be refused for its form first.
    well_formed = schemathesis.openapi.from_dict(document)
    well_formed.config.generation.update(modes=["positive"])
    fuzz = settings(max_examples=EXAMPLES, phases=[Phase.explicit, Phase.generate], deadline=None,
                    suppress_health_check=list(HealthCheck))

    @schema.parametrize()
    @fuzz
    def as_administrator(case: Any, answers_as_documented: Callable[[Any], None]) -> None:
        answers_as_documented(case)

    @well_formed.parametrize()
    @settings(fuzz, max_examples=EXAMPLES_WITHOUT_TOKEN)
    def without_a_token(case: Any, refused_without_a_token: Callable[[Any], None]) -> None:
        refused_without_a_token(case)

    return as_administrator, without_a_token


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on a loop of its own, leaving the suite's event loop alone."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


async def migrated(app: FastAPI) -> None:
    """Migrate before the first call (the background start does too, but later) and close the connections
    opened here: schemathesis calls the app on an event loop of its own."""
    try:
        await app.state.runtime.migrate()
    finally:
        await app.state.runtime.engine.dispose()


@pytest.fixture(scope="module")
def live_app(request: pytest.FixtureRequest, postgres_admin_url: str, kafka_bootstrap: str) -> Iterator[FastAPI]:
    """The module's service API on a new, migrated PostgreSQL database and the session's broker."""
    service: ApiUnderTest = request.module.SERVICE
    database_url = run(create_database(postgres_admin_url, f"api_{service.name}"))
    settings = service.settings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap,
                                **dict(service.options))
    app = service.api(settings)
    run(migrated(app))
    try:
        yield app
    finally:
        asgi.shutdown_lifespans()  # the runtime's stop: consumers, relay, producer, engine


@pytest.fixture(scope="module")
def admin() -> dict[str, str]:
    """A platform administrator acting in the tenant ``fuzz``."""
    return auth_headers(tenant="fuzz", roles=("platform_admin",))


def _is_public(case: Any) -> bool:
    # Ops endpoints, and routes that authenticate their caller another way (x-amiflow-public: a signed
    # provider callback, the token endpoint).
    return case.operation.path in OPS_PATHS or "x-amiflow-public" in case.operation.definition.raw


@pytest.fixture(scope="module")
def answers_as_documented(live_app: FastAPI, admin: dict[str, str]) -> Callable[[Any], None]:
    """Send a case as the administrator: no 5xx, and the status and body its OpenAPI document promises."""
    checks = [not_a_server_error, response_schema_conformance, status_code_conformance]
    return lambda case: case.call_and_validate(app=live_app, headers=admin, checks=checks)


@pytest.fixture(scope="module")
def refused_without_a_token(live_app: FastAPI) -> Callable[[Any], None]:
    """Send a case with no token: 401 on every route but the public ones, and never a 5xx."""

    def check(case: Any) -> None:
        case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        response = case.call(app=live_app)
        assert response.status_code < 500, response.text
        if not _is_public(case):
            assert response.status_code == 401, f"{case.method} {case.path}: {response.status_code} {response.text}"

    return check
