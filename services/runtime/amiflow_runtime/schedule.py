"""The read-schedule arithmetic two services must agree on: ingest polls a meter at its stable
offset, and VEE expects the reading at that same offset within the slot."""

from __future__ import annotations

import hashlib
from datetime import timedelta


def poll_offset(meter_id: str, jitter_s: int) -> timedelta:
    """A meter's stable offset in [0, jitter_s): the same minute every day, the fleet spread out."""
    if jitter_s <= 0:
        return timedelta(0)
    digest = int.from_bytes(hashlib.blake2b(meter_id.encode(), digest_size=8).digest(), "big")
    return timedelta(seconds=digest % jitter_s)
