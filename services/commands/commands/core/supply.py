"""Whether an account's supply should be on or off, as the balance events say.

``cutoff.decide_on_balance`` decides only when this intent changes, so a late, older balance
event (or a redelivered one) sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from amiflow_schemas.events.billing import BalanceDepleted, BalanceRestored


class SupplyIntent(StrEnum):
    """What the money says about an account's supply."""

    CUT_OFF = "cut_off"  # balance depleted past the credit limit
    RESTORE = "restore"  # paid back above the restore threshold


@dataclass(frozen=True)
class AccountSupply:
    """The latest intent for an account and the meters it covers."""

    account_id: str
    intent: SupplyIntent
    since: datetime
    meter_ids: tuple[str, ...]


def evolve(state: AccountSupply | None, event: BalanceDepleted | BalanceRestored) -> AccountSupply:
    """Latest fact wins by its own time; a late older event does not undo a newer one."""
    if isinstance(event, BalanceDepleted):
        candidate = AccountSupply(event.account_id, SupplyIntent.CUT_OFF, event.depleted_at,
                                  tuple(m.meter_id for m in event.meters))
    else:
        candidate = AccountSupply(event.account_id, SupplyIntent.RESTORE, event.restored_at,
                                  tuple(m.meter_id for m in event.meters))
    # On a tie the later arrival wins: billing emits an account's events in order on one partition.
    if state is not None and state.since > candidate.since:
        return state
    return candidate
