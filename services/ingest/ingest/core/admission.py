"""Who may talk to the DTU gateway, and how much of what they send is worth reading.

A utility's rule: only DTUs in the registry may talk. Identity is in-band (dtu-connections.md §0
rule 1), so a socket is weighed twice: when it is accepted (counts per address and in total, before
a byte is read) and when its registration packet names a DTU (the registry's record decides).
Everything here is a pure decision; the gateway counts, reads the registry and the clock, then asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from amiflow_schemas.events.registry import GatewayKind, MaintenanceState

from ingest.core.registry import Gateway, GatewayDetails

# The longest registration packet we know is a Luat iRTU JSON login (~120 bytes, §1); a 376.1 login
# frame is 20. More bytes without a complete login is a peer that is not a DTU of ours.
LOGIN_WINDOW_BYTES = 512
UNREGISTERED_PREFIX = "unregistered-"  # commissioning links' ids, so they never collide with a registered one


class Refusal(StrEnum):
    """Why a socket was closed before its DTU could talk: the metric label and the log's reason."""

    UNREGISTERED = "unregistered"  # the registration id is in no tenant's registry
    RETIRED = "retired"  # the gateway was decommissioned; its modem (or a copy of its id) still calls
    BAD_LOGIN = "bad_login"  # the first bytes are not a registration packet of the port's format
    LOGIN_TOO_LONG = "login_too_long"
    LOGIN_TIMEOUT = "login_timeout"
    CLOSED_BEFORE_LOGIN = "closed_before_login"
    TOO_MANY_FROM_ADDRESS = "too_many_connections"
    GATEWAY_FULL = "gateway_full"
    TOO_MANY_PENDING = "too_many_pending_logins"
    TLS_HANDSHAKE = "tls_handshake"


class LinkEnd(StrEnum):
    """Why the gateway closed a logged-in link itself."""

    NO_VALID_FRAME = "no_valid_frame"  # a stream of bytes that never makes a frame
    IDLE = "idle"
    TAKEN_OVER = "taken_over"  # the same id logged in on a new socket
    WITHDRAWN = "registration_withdrawn"  # retired or removed from the registry while connected
    SILENT_BUS = "silent_bus"


@dataclass(frozen=True)
class ConnectionLimits:
    """How many sockets the gateway holds: from one address, in all, and not yet logged in."""

    per_address: int
    total: int
    pending_logins: int


def judge_connection(limits: ConnectionLimits, *, from_address: int, total: int, pending: int) -> Refusal | None:
    """Whether one more socket may be accepted; the counts are of the sockets already held."""
    if total >= limits.total:
        return Refusal.GATEWAY_FULL
    # Sockets that never log in cost a slot each until the login timeout: they get their own, smaller
    # share, so a flood of them cannot crowd out the links of DTUs that did log in.
    if pending >= limits.pending_logins:
        return Refusal.TOO_MANY_PENDING
    if from_address >= limits.per_address:
        return Refusal.TOO_MANY_FROM_ADDRESS
    return None


@dataclass(frozen=True)
class Admitted:
    """The login may proceed, as this gateway; a commissioning link is held, but nothing it sends is read."""

    gateway: Gateway
    commissioning: bool = False


@dataclass(frozen=True)
class Refused:
    """The login is refused: the connection is closed after it, and nothing it sent is decoded."""

    reason: Refusal
    detail: str


@dataclass(frozen=True)
class LoginPolicy:
    """What the port does with ids the registry does not know."""

    accept_unregistered: bool  # commissioning only: see IngestSettings.gateway_accept_unregistered
    unassigned_tenant: str


def judge_login(registration_id: str, gateway: Gateway | None, policy: LoginPolicy,
                kind: GatewayKind = GatewayKind.DTU) -> Admitted | Refused:
    """May the DTU that sent ``registration_id`` talk? ``gateway`` is the registry's record of that id."""
    if gateway is not None and gateway.details.maintenance is MaintenanceState.RETIRED:
        return Refused(Refusal.RETIRED, f"gateway {gateway.gateway_id} of tenant {gateway.tenant_id} "
                                        f"(registration id {registration_id!r}) is retired")
    if gateway is not None:
        return Admitted(gateway)
    if policy.accept_unregistered:
        details = GatewayDetails(kind, registration_id=registration_id)
        return Admitted(Gateway(policy.unassigned_tenant, UNREGISTERED_PREFIX + registration_id, details), True)
    return Refused(Refusal.UNREGISTERED, f"registration id {registration_id!r} is not registered")


def judge_standing(held: Admitted, now: Gateway | None, policy: LoginPolicy) -> str | None:
    """Why a held link must close now that the registry says ``now`` of its id; None while it may stay."""
    registration_id = held.gateway.details.registration_id or ""
    verdict = judge_login(registration_id, now, policy, held.gateway.details.kind)
    if isinstance(verdict, Refused):
        return verdict.detail
    was, becomes = held.gateway, verdict.gateway
    if (was.tenant_id, was.gateway_id) != (becomes.tenant_id, becomes.gateway_id):
        # Registered while commissioning, or moved to another tenant: log in again as what it is now.
        return f"registration id {registration_id!r} now belongs to {becomes.gateway_id} of tenant {becomes.tenant_id}"
    return None


@dataclass
class ReportBudget:
    """At most ``per_minute`` reports of each kind a minute; the rest are counted and told with the next one.

    Refusals come from outside: a flood of them must cost a counter increment, not a log line and a
    stored record each, or it fills the disk.
    """

    per_minute: int
    _windows: dict[str, tuple[float, int, int]] = field(default_factory=dict)  # kind → start, used, held back

    def admit(self, kind: str, now_s: float) -> int | None:
        """None: stay quiet. Otherwise report, mentioning this many held back since the last report."""
        start, used, held = self._windows.get(kind, (now_s, 0, 0))
        if now_s - start >= 60.0:
            start, used = now_s, 0
        if used >= self.per_minute:
            self._windows[kind] = (start, used, held + 1)
            return None
        self._windows[kind] = (start, used + 1, 0)
        return held


@dataclass
class NoiseBudget:
    """Bytes a link may send without a valid frame among them before it is cut off.

    Every such byte is reported as FrameRejected; a peer that streams garbage must run out of
    allowance long before it runs the rejected-frames topic full.
    """

    limit: int
    run: int = 0

    def spend(self, garbage_bytes: int) -> bool:
        """Count bytes that made no frame; True once the run passes the limit."""
        self.run += garbage_bytes
        return self.run > self.limit

    def frame(self) -> None:
        """A valid frame arrived: the peer speaks a meter protocol after all."""
        self.run = 0
