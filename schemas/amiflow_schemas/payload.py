"""The base classes of every event payload and of the values nested in payloads."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class EventPayload(BaseModel):
    """A frozen fact; subclasses name themselves with EVENT_TYPE and EVENT_VERSION."""

    # Unknown fields are ignored, not refused: a producer already on a newer schema may add an
    # optional field (same version, see README) and consumers still on the old code must not
    # dead-letter those events during a rolling deploy.
    model_config = ConfigDict(frozen=True, extra="ignore")

    EVENT_TYPE: ClassVar[str]
    EVENT_VERSION: ClassVar[int]


class PayloadPart(BaseModel):
    """A frozen value nested inside a payload (a register value, a charge line …)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


def is_event_class(cls: type[BaseModel]) -> bool:
    """True for a concrete payload class (one that declares its own EVENT_TYPE)."""
    return issubclass(cls, EventPayload) and "EVENT_TYPE" in vars(cls)


@contextmanager
def shadowing_abc_register() -> Iterator[None]:
    """Define models with a field named ``register`` (declare it ``= Field()``) without a warning."""
    # "register" is the meter's word. It hides ABCMeta.register (virtual subclass registration),
    # which nobody calls on a payload; but pydantic would take that method as the field's
    # default unless the field is declared with an explicit Field().
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)
        yield
