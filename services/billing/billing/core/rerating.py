"""Re-rating after a ReadingCorrected (billing.md rating step 5, R4): post the difference, keep history.

The history of one (account, tariff) is its rated readings in the order they were rated. A
correction puts its reading in place of the one it supersedes; the tier periods either span
touches are priced again from their start in that same order, and the adjustment is, per period,
round2(C_new) - round2(C_stored). Readings rated before the corrected one price as they did, so
the difference comes from the corrected reading onward; nothing already posted is rewritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from amiflow_schemas.events.billing import AdjustmentPosted, AdjustmentReason
from amiflow_schemas.events.readings import ReadingCorrected

from billing.core.accounts import Account
from billing.core.money import ZERO
from billing.core.rating import (
    MeterReading,
    RatingError,
    TierPeriods,
    TierPeriodState,
    charge_lines,
    check_fits,
    periods_of,
    posted_change,
    price_readings,
    reading_of,
)
from billing.core.tariffs import Tariff


def corrected_reading(event_id: UUID, event: ReadingCorrected, superseded: MeterReading) -> MeterReading:
    """The span a correction puts in place of the one it supersedes; zero when it no longer bills."""
    reading = reading_of(event_id, event)
    if reading is not None:
        return reading
    return replace(superseded, reading_event_id=event_id, quantity=ZERO,
                   registers=tuple((name, ZERO) for name, _ in superseded.registers))


def affected_periods(superseded: MeterReading, corrected: MeterReading, account: Account,
                     tariff: Tariff) -> tuple[tuple[datetime, datetime], ...]:
    """The tier periods a correction changes: those the old or the new span overlaps, in order.

    The adapter loads every reading of the account's tariff overlapping them (the history) and
    their stored states.
    """
    return tuple(sorted({*periods_of(superseded, account, tariff), *periods_of(corrected, account, tariff)}))


@dataclass(frozen=True)
class Rerating:
    """A correction re-rated: the adjustment to append, the history and the period states to store."""

    adjustment: AdjustmentPosted | None  # None when the correction changes nothing that was priced
    history: tuple[MeterReading, ...]  # the corrected reading in place of the one it supersedes
    periods: dict[datetime, TierPeriodState]  # the affected periods' new states


def _position(history: Sequence[MeterReading], event_id: UUID, account: Account) -> int:
    index = next((i for i, r in enumerate(history) if r.reading_event_id == event_id), None)
    if index is None:
        raise RatingError(f"reading {event_id} was never rated for account {account.account_id}")
    return index


def _check_complete(replayed: TierPeriods, stored: TierPeriods) -> None:
    # Quantities do not depend on prices: if the replayed history does not add up to what was
    # stored, readings are missing from it, and re-rating would credit or charge their cost.
    for start, state in stored.items():
        found = replayed[start].quantity if start in replayed else ZERO
        if found != state.quantity:
            raise RatingError(f"the history of the tier period from {start.isoformat()} adds up to {found}, "
                              f"its stored state to {state.quantity}: give every reading rated in it")


def rerate(superseded_event_id: UUID, corrected: MeterReading, history: Sequence[MeterReading],
           account: Account, tariff: Tariff, periods: TierPeriods, at: datetime) -> Rerating:
    """Re-rate ``history`` (rating order) with ``corrected`` in place of the reading it supersedes.

    ``periods`` are the stored states of at least the affected periods; ``at`` is the posting time.
    RatingError when the superseded reading is not in the history: the adapter rates a correction
    of a reading that was never rated (e.g. a missing one now estimated) as a new reading instead.
    """
    index = _position(history, superseded_event_id, account)
    check_fits(corrected, account, tariff)
    superseded = history[index]
    new_history = (*history[:index], corrected, *history[index + 1:])
    affected = affected_periods(superseded, corrected, account, tariff)
    only = frozenset(start for start, _ in affected)
    replayed_old, old_slices = price_readings(history, account, tariff, {}, only)
    stored = {start: periods[start] for start in only if start in periods}
    _check_complete(replayed_old, stored)
    replayed, new_slices = price_readings(new_history, account, tariff, {}, only)
    # A period the corrected span left with no reading at all drops to zero, not out of the sum.
    new_states = {start: replayed.get(start) or TierPeriodState(start, end, ZERO, ZERO) for start, end in affected}
    amount = posted_change(stored, new_states)
    lines = charge_lines(s for slices in new_slices[index:] for s in slices)
    replaced = charge_lines(s for slices in old_slices[index:] for s in slices)
    if amount == 0 and lines == replaced:
        return Rerating(None, new_history, new_states)
    adjustment = AdjustmentPosted(
        account_id=account.account_id, reason=AdjustmentReason.RE_RATED, amount=amount, currency=account.currency,
        posted_at=at, meter_id=corrected.meter_id, utility=corrected.utility,
        correction_event_id=corrected.reading_event_id, quantity=corrected.quantity - superseded.quantity,
        quantity_unit=corrected.unit, lines=lines, replaced_lines=replaced, counterpart_account_id=None,
        operator_id=None, note=None)
    return Rerating(adjustment, new_history, new_states)
