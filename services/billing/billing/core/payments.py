"""Payment provider callbacks and amounts, checked before anything is credited (billing.md "Payments").

A callback is signed with HMAC-SHA256 over ``timestamp + "." + raw body`` with the provider's
secret; the timestamp (Unix seconds) must be within 5 minutes of ``now``. That window bounds how
long a captured callback can be replayed; within it the (channel, provider transaction id) key
of PaymentReceived makes a replay credit nothing twice.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from amiflow_schemas.events.tariffs import is_whole_cents

CALLBACK_TOLERANCE = timedelta(minutes=5)


class CallbackProblem(StrEnum):
    """Why a provider callback was refused."""

    MISSING_HEADER = "missing_header"
    MALFORMED_TIMESTAMP = "malformed_timestamp"
    BAD_SIGNATURE = "bad_signature"
    STALE_TIMESTAMP = "stale_timestamp"


@dataclass(frozen=True)
class CallbackVerdict:
    """The outcome of verifying one callback: ``problem`` is None when it may be credited."""

    problem: CallbackProblem | None
    detail: str

    @property
    def accepted(self) -> bool:
        """True when the callback is authentic and fresh."""
        return self.problem is None


def callback_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The lowercase hex HMAC-SHA256 a provider sends for ``body`` signed at ``timestamp``."""
    return hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def verify_callback(secret: bytes, timestamp: str | None, signature: str | None, body: bytes,
                    now: datetime, tolerance: timedelta = CALLBACK_TOLERANCE) -> CallbackVerdict:
    """Check a callback's signature over its raw body, then its timestamp against ``now``."""
    if not timestamp or not signature:
        missing = "timestamp" if not timestamp else "signature"
        return CallbackVerdict(CallbackProblem.MISSING_HEADER, f"the {missing} header is missing")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 11:
        return CallbackVerdict(CallbackProblem.MALFORMED_TIMESTAMP, "the timestamp is not Unix seconds")
    expected = callback_signature(secret, timestamp, body).encode("ascii")
    # compare_digest takes the same time wherever the strings differ; non-ASCII input is just wrong.
    given = signature.strip().lower().encode("ascii", errors="replace")
    if not hmac.compare_digest(expected, given):
        return CallbackVerdict(CallbackProblem.BAD_SIGNATURE, "the signature does not match the body")
    signed_at = datetime.fromtimestamp(int(timestamp), tz=UTC)
    if abs(now - signed_at) > tolerance:
        return CallbackVerdict(CallbackProblem.STALE_TIMESTAMP,
                               f"signed at {signed_at.isoformat()}, more than {tolerance} from {now.isoformat()}")
    return CallbackVerdict(None, "authentic and fresh")


class AmountProblem(StrEnum):
    """Why a payment, subsidy or refund amount was refused."""

    NOT_A_DECIMAL = "not_a_decimal"
    NOT_POSITIVE = "not_positive"
    FRACTION_OF_A_CENT = "fraction_of_a_cent"
    WRONG_CURRENCY = "wrong_currency"


@dataclass(frozen=True)
class AmountCheck:
    """A checked amount: ``amount`` when it is acceptable, else the problem and what was wrong."""

    amount: Decimal | None
    problem: AmountProblem | None
    detail: str


def check_amount(amount: object, currency: str, tenant_currency: str) -> AmountCheck:
    """Accept a positive amount of whole cents, given as text, int or Decimal, in the tenant's currency."""
    if isinstance(amount, bool | float) or not isinstance(amount, str | int | Decimal):
        return AmountCheck(None, AmountProblem.NOT_A_DECIMAL, "give the amount as a decimal string, never a float")
    try:
        value = Decimal(amount.strip() if isinstance(amount, str) else amount)
    except InvalidOperation:
        return AmountCheck(None, AmountProblem.NOT_A_DECIMAL, f"{amount!r} is not a decimal number")
    if not value.is_finite():
        return AmountCheck(None, AmountProblem.NOT_A_DECIMAL, f"{amount!r} is not a finite number")
    if value <= 0:
        return AmountCheck(None, AmountProblem.NOT_POSITIVE, f"the amount must be above zero, not {value}")
    if not is_whole_cents(value):
        return AmountCheck(None, AmountProblem.FRACTION_OF_A_CENT, f"{value} has more than 2 decimal places")
    if currency != tenant_currency:
        return AmountCheck(None, AmountProblem.WRONG_CURRENCY, f"{currency} given; this tenant takes {tenant_currency}")
    return AmountCheck(value, None, "acceptable")
