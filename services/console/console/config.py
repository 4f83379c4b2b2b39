"""Settings of the console (env prefix CONSOLE_)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

from amiflow_runtime.config import ServiceSettings, settings_config
from pydantic import Field, field_validator, model_validator

# The services the browser may reach through the console, and where `amiflow up` runs their APIs.
UPSTREAM_PORTS = {"identity": 8006, "ingest": 8001, "vee": 8002, "billing": 8003, "commands": 8004, "notify": 8005}
WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"


class ConsoleSettings(ServiceSettings):
    """Where the built web app is and where each service's API answers; platform-wide settings come from
    ServiceSettings (the console uses no database and no Kafka)."""

    model_config = settings_config("CONSOLE_")
    service_name: ClassVar[str] = "console"
    default_api_port: ClassVar[int] = 8007

    # Each service's API base URL, e.g. {"billing": "http://billing-api:8003"}; a service left out is
    # reached at 127.0.0.1 on its <SERVICE>_API_PORT (or its default port), as `amiflow up` runs it.
    upstreams: dict[str, str] = Field(default_factory=dict)
    web_dist: Path = WEB_DIST
    # A proxied call that takes longer is answered 504: report downloads stream, so this bounds waiting
    # for the first byte, not the size.
    upstream_timeout_s: float = Field(60.0, gt=0, le=600)

    @field_validator("upstreams", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @field_validator("upstreams")
    @classmethod
    def _known_services(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(UPSTREAM_PORTS))
        if unknown:
            raise ValueError(f"unknown service(s) in CONSOLE_UPSTREAMS: {', '.join(unknown)}; "
                             f"known: {', '.join(UPSTREAM_PORTS)}")
        for service, url in value.items():
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"CONSOLE_UPSTREAMS[{service}] must be an http(s) URL, not {url!r}")
        return {service: url.rstrip("/") for service, url in value.items()}

    @model_validator(mode="after")
    def _every_service_reachable(self) -> ConsoleSettings:
        # A frozen model: fill the defaults in place once, at construction.
        filled = {service: self.upstreams.get(service)
                  or f"http://127.0.0.1:{os.environ.get(f'{service.upper()}_API_PORT') or port}"
                  for service, port in UPSTREAM_PORTS.items()}
        object.__setattr__(self, "upstreams", filled)
        return self
