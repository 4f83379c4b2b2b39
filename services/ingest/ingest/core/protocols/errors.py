"""The one exception the codecs raise: bytes that are not a usable frame, and why."""

from __future__ import annotations

from amiflow_schemas.events.devices import FrameProtocol, RejectionReason


class FrameError(ValueError):
    """Bytes that are not a usable frame; ``str(error)`` is the human reason."""

    def __init__(
        self,
        reason: RejectionReason,
        detail: str,
        *,
        protocol: FrameProtocol = FrameProtocol.UNKNOWN,
        address: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.protocol = protocol
        self.address = address  # the meter address, when the header could still be read
