"""Settings of the commands service (env prefix COMMANDS_)."""

from __future__ import annotations

from typing import ClassVar

from amiflow_runtime.config import ServiceSettings, settings_config


class CommandsSettings(ServiceSettings):
    """Remote valve and relay control; platform-wide settings come from ServiceSettings."""

    model_config = settings_config("COMMANDS_")
    service_name: ClassVar[str] = "commands"
    default_api_port: ClassVar[int] = 8004
