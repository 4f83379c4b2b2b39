"""schemathesis against the billing API: no 5xx, answers as documented, 401 without a token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from billing.config import BillingSettings
from billing.main import api
from hypothesis import HealthCheck, Phase, settings

from .conftest import EXAMPLES, EXAMPLES_WITHOUT_TOKEN, ApiUnderTest

pytestmark = pytest.mark.integration
SERVICE = ApiUnderTest("billing", api, BillingSettings)
schema = schemathesis.openapi.from_dict(SERVICE.blueprint().openapi())
# Without a token only well-formed calls say something: a broken one may be refused for its form first.
well_formed = schemathesis.openapi.from_dict(SERVICE.blueprint().openapi())
well_formed.config.generation.update(modes=["positive"])
FUZZ = settings(max_examples=EXAMPLES, phases=[Phase.explicit, Phase.generate], deadline=None,
                suppress_health_check=list(HealthCheck))


@schema.parametrize()
@FUZZ
def test_no_5xx_and_every_answer_is_documented(case: Any, answers_as_documented: Callable[[Any], None]) -> None:
    answers_as_documented(case)


@well_formed.parametrize()
@settings(FUZZ, max_examples=EXAMPLES_WITHOUT_TOKEN)
def test_without_a_token_every_route_but_the_public_ones_answers_401(
    case: Any, refused_without_a_token: Callable[[Any], None],
) -> None:
    refused_without_a_token(case)
