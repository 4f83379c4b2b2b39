"""An account's supply intent from balance events: the latest fact by its own time wins."""

from __future__ import annotations

from datetime import timedelta

from amiflow_schemas.events.billing import BalanceDepleted, BalanceRestored
from amiflow_schemas.examples import AT, example_payloads
from commands.core.supply import SupplyIntent, evolve

_EXAMPLES = example_payloads()
DEPLETED = _EXAMPLES["BalanceDepleted"]
RESTORED = _EXAMPLES["BalanceRestored"]
assert isinstance(DEPLETED, BalanceDepleted) and isinstance(RESTORED, BalanceRestored)


def test_a_depleted_balance_cuts_off_the_accounts_meters() -> None:
    state = evolve(None, DEPLETED)
    assert state.intent is SupplyIntent.CUT_OFF
    assert state.account_id == "ACC-0001"
    assert state.meter_ids == ("WM-000012345678", "EM-123456789012")
    assert state.since == AT


def test_a_later_restored_balance_restores_supply() -> None:
    restored = RESTORED.model_copy(update={"restored_at": AT + timedelta(hours=1)})
    state = evolve(evolve(None, DEPLETED), restored)
    assert state.intent is SupplyIntent.RESTORE
    assert state.since == AT + timedelta(hours=1)


def test_an_older_restore_arriving_late_does_not_undo_a_newer_cut_off() -> None:
    restored = RESTORED.model_copy(update={"restored_at": AT - timedelta(hours=1)})
    cut_off = evolve(None, DEPLETED)
    assert evolve(cut_off, restored) == cut_off


def test_an_older_cut_off_arriving_late_does_not_undo_a_newer_restore() -> None:
    depleted = DEPLETED.model_copy(update={"depleted_at": AT - timedelta(hours=1)})
    restored = evolve(None, RESTORED)
    assert evolve(restored, depleted) == restored
