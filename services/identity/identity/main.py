"""Composition root of identity: `python -m identity.main api|worker|migrate|<tool>` (tools: identity.tools)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from amiflow_runtime.auth import TokenVerifier
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.process import api_app, service_main, worker_app
from fastapi import FastAPI

from identity import tools
from identity.adapters import db
from identity.adapters.http import router as credentials_router
from identity.adapters.oauth_http import router as oauth_router
from identity.adapters.undo import UNDO
from identity.adapters.verifier import own_keys
from identity.config import IdentitySettings
from identity.runtime import IdentityRuntime

MIGRATIONS = Path(__file__).parent / "migrations"


def build_runtime(settings: ServiceSettings, role: str) -> IdentityRuntime:
    # Identity consumes no topic, so nothing of its own is ever dead-lettered.
    return IdentityRuntime(settings=settings, role=role, migrations_dir=MIGRATIONS, inbox=db.inbox, outbox=db.outbox,
                           dead_letter_topic="")


def api(settings: ServiceSettings) -> FastAPI:
    """The token endpoint, JWKS and discovery, and the management API."""
    runtime = build_runtime(settings, "api")
    runtime.relay_outbox = False
    app = api_app(runtime, title="amiflow identity",
                  description="Access tokens (OAuth 2.0, JWT), the keys that sign them, and who holds which role.",
                  routers=[oauth_router, credentials_router], undo=UNDO)
    own = runtime.identity_settings
    # Its own keys (and AMIFLOW_AUTH_JWKS_FILE's, e.g. the test suite's), read afresh on every check.
    app.state.token_verifier = TokenVerifier(issuer=own.auth_issuer, audience=own.auth_audience,
                                             jwks_file=own.auth_jwks_file, sources=[own_keys(runtime.keyring)],
                                             leeway_s=own.auth_leeway_s, refresh_s=0.0)
    return app


def worker(settings: ServiceSettings) -> Callable[[], None]:
    """Relays the outbox and keeps house: key rotation when due, forgetting stale login failures."""
    return worker_app(build_runtime(settings, "worker"), [])


def main(argv: list[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] in (["-h"], ["--help"]):
        tools.parser().print_help()  # the tools and the processes
        return 0
    if given and given[0] in tools.TOOLS:
        return tools.main(given, MIGRATIONS)
    return service_main(given, settings=IdentitySettings, api=api, worker=worker, migrations_dir=MIGRATIONS)


if __name__ == "__main__":
    sys.exit(main())
