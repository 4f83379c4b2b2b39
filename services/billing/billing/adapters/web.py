"""What billing's routers share: its settings, refusals as HTTP answers, request validation, languages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

from amiflow_runtime.config import ServiceSettings
from amiflow_schemas.primitives import Identifier
from fastapi import HTTPException
from pydantic import Field

from billing.config import BillingSettings
from billing.operations import Refusal, Refused
from billing.statements import Language

T = TypeVar("T")

STATUS = {Refusal.NOT_FOUND: 404, Refusal.CONFLICT: 409, Refusal.INVALID: 422}

# Billing's tables keep account, meter and tariff ids in 64 characters (an event's Identifier may have 128):
# a longer id in a request that stores one is refused with 422, not failed in the database.
StoredId = Annotated[Identifier, Field(max_length=64)]


def refusal_docs(*refusals: Refusal) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the refusals a route can answer."""
    meaning = {Refusal.NOT_FOUND: "No such account (or tariff)", Refusal.CONFLICT: "Not allowed in the current state",
               Refusal.INVALID: "The request is wrong; the reason says how"}
    return {STATUS[r]: {"description": meaning[r]} for r in refusals}


def billing_settings(settings: ServiceSettings) -> BillingSettings:
    """The billing settings of the app (the composition root may hand the runtime plain ServiceSettings)."""
    if isinstance(settings, BillingSettings):
        return settings
    return BillingSettings.model_validate(settings.model_dump())


def refused(exc: Refused) -> HTTPException:
    """The HTTP answer to a refused request: 404 / 409 / 422 with the problem code and the reason."""
    return HTTPException(STATUS[exc.refusal], detail={"problem": exc.problem, "reason": exc.reason})


@contextmanager
def answering_refusals() -> Iterator[None]:
    """Turn a Refused raised inside the block (after its transaction rolled back) into its HTTP answer."""
    try:
        yield
    except Refused as exc:
        raise refused(exc) from None


def language_of(lang: str | None, accept_language: str | None) -> Language:
    """?lang= when given (422 unless zh-CN or en), else the best of Accept-Language, else Chinese."""
    if lang is not None:
        try:
            return Language(lang)
        except ValueError:
            reason = f"lang is zh-CN or en, not {lang!r}"
            raise HTTPException(422, detail={"problem": "unknown_language", "reason": reason}) from None
    for tag, weight in sorted(_weighted(accept_language or ""), key=lambda pair: -pair[1]):
        if weight <= 0:
            break
        if tag.startswith("zh"):
            return Language.ZH_CN
        if tag.startswith("en"):
            return Language.EN
    return Language.ZH_CN


def _weighted(header: str) -> list[tuple[str, float]]:
    """(value, q) pairs of an Accept-style header, lowercase; q=0 says "not this one"."""
    found = []
    for part in header.split(","):
        value, *params = (p.strip() for p in part.split(";"))
        weight = 1.0
        for param in params:
            name, _, number = param.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(number)
                except ValueError:
                    weight = 0.0
        if value:
            found.append((value.lower(), weight))
    return found


def preferred(accept: str | None, offers: dict[str, str], default: str) -> str | None:
    """The offer (by name) the Accept header weighs highest, ``default`` without one; None when none fits.

    ``offers`` maps a name to its media type; a type matches itself, its ``type/*`` and ``*/*``.
    """
    if not accept:
        return default
    weights = _weighted(accept)

    def weight(media_type: str) -> float:
        kind = media_type.split("/")[0]
        for candidate in (media_type, f"{kind}/*", "*/*"):
            matches = [q for value, q in weights if value == candidate]
            if matches:
                return max(matches)
        return 0.0

    scored = [(weight(media_type), name == default, name) for name, media_type in offers.items()]
    best = max(scored)
    return best[2] if best[0] > 0 else None
