"""schemathesis against the identity API: no 5xx, answers as documented, 401 without a token.

Identity checks tokens against its own signing keys, not the suite's: the administrator's token comes
from its token endpoint, for a client made the way the operators' CLI makes one.
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

import httpx
import pytest
from amiflow_runtime.auth import Role
from fastapi import FastAPI
from identity.app import Credentials, NewClient
from identity.config import IdentitySettings
from identity.core.credentials import checked_reach
from identity.main import api
from pydantic import SecretStr

from .conftest import ApiUnderTest, openapi_tests, run

pytestmark = pytest.mark.integration
SERVICE = ApiUnderTest("identity", api, IdentitySettings, options=(
    ("key_encryption_key", SecretStr(base64.urlsafe_b64encode(os.urandom(32)).decode())),
    ("data_dir", Path(tempfile.mkdtemp(prefix="amiflow-identity-fuzz-")))))


async def _admin_token(app: FastAPI) -> str:
    runtime = app.state.runtime
    reach = checked_reach([Role.PLATFORM_ADMIN], for_client=True)
    client, secret = await Credentials(runtime).add_client("fuzz", NewClient("schemathesis", reach), by="test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://identity") as http:
        answer = await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                 auth=(client.client_id, secret))
        await runtime.engine.dispose()  # schemathesis calls the app on a loop of its own
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


@pytest.fixture(scope="module")
def admin(live_app: FastAPI) -> dict[str, str]:
    """A platform administrator of the tenant ``fuzz``, with a token identity issued."""
    return {"Authorization": f"Bearer {run(_admin_token(live_app))}", "X-Tenant-Id": "fuzz"}


test_no_5xx_and_every_answer_is_documented, test_without_a_token_every_route_but_the_public_ones_answers_401 = (
    openapi_tests(SERVICE))
