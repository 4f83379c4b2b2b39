"""The base of VEE's state and configuration types."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Stored(BaseModel):
    """State or configuration kept in a table: frozen, and serialisable with model_dump(mode="json")."""

    # extra="ignore" lets an older worker read state a newer one wrote during a rolling deploy.
    model_config = ConfigDict(frozen=True, extra="ignore")
