"""How an integrator recognises a webhook as ours: HMAC-SHA256 over the timestamp and the raw body.

The scheme is the one billing verifies on payment-provider callbacks, so integrators meet one rule on
both sides of amiflow. Signing the timestamp with the body lets a receiver refuse replays of an old
delivery without trusting a header we did not sign.
"""

from __future__ import annotations

import hashlib
import hmac


def webhook_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The lowercase hex HMAC-SHA256 of ``timestamp + "." + body`` under the subscription's secret."""
    return hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
