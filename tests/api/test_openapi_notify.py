"""schemathesis against the notify API: no 5xx, answers as documented, 401 without a token."""

from __future__ import annotations

import pytest
from notify.config import NotifySettings
from notify.main import api

from .conftest import ApiUnderTest, openapi_tests

pytestmark = pytest.mark.integration
SERVICE = ApiUnderTest("notify", api, NotifySettings)


test_no_5xx_and_every_answer_is_documented, test_without_a_token_every_route_but_the_public_ones_answers_401 = (
    openapi_tests(SERVICE))
