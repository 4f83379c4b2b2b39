"""The delivery ledger: every reply a virtual DTU actually wrote to its socket, for tests to compare.

An entry is made when the bytes went out, never when the meter answered: a reply lost to a dropped
link is entered once, when its backlog copy is delivered after the DTU logged in again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from amiflow_schemas.primitives import RelayState, ValveState

from ingest.core.protocols import RegisterReading
from ingest.simulator.replies import Reply, ReplyKind


@dataclass(frozen=True)
class Delivery:
    """One reply as it went out on the link."""

    meter_id: str
    dtu_id: str
    kind: ReplyKind
    data_id: str | None
    meter_clock: datetime  # the meter's clock when it answered, aware in the fleet's zone
    measured_at: datetime | None  # the clock the frame carries (CJ/T 188); None: the head-end uses receive time
    registers: tuple[RegisterReading, ...]
    frame_hex: str
    delivered_at: datetime  # true time the bytes were written
    backlogged: bool = False  # held across an offline spell and sent after the next login
    pushed: bool = False  # sent by the meter by itself, not asked for
    valve: ValveState | None = None  # the status the frame reports (see Reply)
    relay: RelayState | None = None
    battery_low: bool | None = None

    @property
    def values(self) -> dict[str, Decimal]:
        """Register name → value, as the head-end's ReadingReceived carries them."""
        return {reading.register: reading.value for reading in self.registers}

    @classmethod
    def of(cls, reply: Reply, dtu_id: str, delivered_at: datetime, *, backlogged: bool, pushed: bool) -> Delivery:
        return cls(reply.meter_id, dtu_id, reply.kind, reply.data_id, reply.meter_clock,
                   reply.meter_clock if reply.carries_clock else None, reply.registers, reply.frame.hex(),
                   delivered_at, backlogged, pushed, reply.valve, reply.relay, reply.battery_low)


class Ledger:
    """Deliveries in the order they were written (one list for the whole fleet)."""

    def __init__(self) -> None:
        self._entries: list[Delivery] = []

    def record(self, delivery: Delivery) -> None:
        self._entries.append(delivery)

    def __iter__(self) -> Iterator[Delivery]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def for_meter(self, meter_id: str) -> list[Delivery]:
        return [d for d in self._entries if d.meter_id == meter_id]

    def readings(self) -> list[Delivery]:
        """Deliveries with registers: each should become a ReadingReceived."""
        return [d for d in self._entries if d.registers]

    def distinct_readings(self) -> list[Delivery]:
        """Readings as the head-end keeps them: one per meter and meter-clock instant.

        The head-end keys a reading by meter and measured_at; a second frame with the same meter
        clock second is a duplicate (or a conflict) there, not a new ReadingReceived. Frames without
        a clock are stamped with the receive time, so they are all distinct.
        """
        seen: set[tuple[str, datetime]] = set()
        kept = []
        for delivery in self.readings():
            if delivery.measured_at is not None:
                key = (delivery.meter_id, delivery.measured_at)
                if key in seen:
                    continue
                seen.add(key)
            kept.append(delivery)
        return kept
