"""Settings of the commands service (env prefix COMMANDS_)."""

from __future__ import annotations

from typing import ClassVar

from amiflow_runtime.config import ServiceSettings, settings_config
from amiflow_schemas.primitives import Utility
from pydantic import Field

from commands.core.lifecycle import LifecycleSettings
from commands.core.policy import CutOffPolicy


def _cut_everything() -> CutOffPolicy:
    # A tenant that has not set a policy yet: prepayment means every service with a valve or relay
    # is cut when the money runs out and restored on payment, at any hour. PUT /v1/cut-off-policy
    # replaces it (quiet nights, weekends, holidays, "cut electricity, not water").
    return CutOffPolicy(policy_id="default", cut_utilities=frozenset(Utility))


class CommandsSettings(ServiceSettings):
    """Remote valve and relay control; platform-wide settings come from ServiceSettings."""

    model_config = settings_config("COMMANDS_")
    service_name: ClassVar[str] = "commands"
    default_api_port: ClassVar[int] = 8004

    # Retries, read-back and expiry timing (JSON, e.g. {"max_attempts": 3, "confirm_timeout": "PT15M"}).
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    # The policy of a tenant that has not PUT one (JSON of a CutOffPolicy).
    default_policy: CutOffPolicy = Field(default_factory=_cut_everything)
    # How often the timer looks for commands due to be sent, re-sent, failed or expired.
    timer_interval_s: float = Field(1.0, gt=0)
    # Commands one timer pass handles at most (the most overdue first).
    timer_batch: int = Field(500, ge=1)
