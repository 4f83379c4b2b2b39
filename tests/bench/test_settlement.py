"""The settlement benchmark at a small scale on the suite's PostgreSQL: the figures are there and the
settlement it timed settled every account once, equal to the set-based SQL baseline (no speed asserted)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from amiflow_bench import settlement

pytestmark = pytest.mark.integration


async def test_the_quick_settlement_bench_settles_every_account_once_as_the_sql_baseline_sums(
        postgres_database: Any) -> None:
    accounts = settlement.SCALES["quick"]
    figures = await settlement.run(postgres_database, None, accounts)
    json.dumps(figures)  # plain JSON for the runner
    assert figures["accounts"] == figures["days_settled"] == accounts
    assert figures["every_account_settled_once_and_equal_to_baseline"] is True
    assert figures["outbox_accounts_settled_once"] == figures["projection_accounts_settled_once"] == accounts
    assert figures["outbox_closings_differing_from_baseline"] == 0
    assert figures["balances_differing_from_baseline"] == 0
    # A fee and a settlement each; every 50th account's fee takes it below the low threshold.
    low = accounts // settlement.LOW_EVERY
    assert figures["outbox_events"] == {"ChargeApplied": accounts, "DailySettled": accounts, "BalanceLow": low}
    assert figures["rows_written"] == {"ledger_entries": accounts, "daily_settlements": accounts,
                                       "outbox": 2 * accounts + low, "account_balances_updated": accounts}
    assert figures["rows_loaded"]["account_balances"] == accounts
    assert figures["baseline_sql_s"] > 0 and figures["settlement_s"] > 0
    assert figures["ratio_settlement_to_baseline"] > 0
    assert isinstance(figures["goal_met"], bool) and figures["measured_at_goal_scale"] is False
