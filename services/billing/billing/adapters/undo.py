"""How billing's operator actions are undone: the compensating request for each, or why there is none.

Money is exact and the ledger only appends, so nothing is undone by deleting: a setting is put back by
changing it again, a meter link is ended (or started again), and a tariff version by publishing the prices
it replaced as a newer version. Payments, recharges and subsidies have no compensating operation in the
API (a reversal route does not exist yet), nor do move-outs and room changes (a refund is paid out).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from amiflow_runtime.audit_undo import (
    ActionRequest,
    CannotUndo,
    Compensation,
    Undoable,
    UndoContext,
    UndoRegistry,
    segment,
)

# A tariff version takes effect "from now on", checked against the clock of the request that publishes it;
# the compensating version starts this much after the moment the undo was decided, so it is never refused
# as retroactive by the time its own request runs.
TARIFF_MARGIN = timedelta(seconds=1)
_VERSION_FIELDS = ("tiers", "register_prices", "fixed_daily_charge", "recurring_charges")


def _tariff_before(request: ActionRequest) -> str | None:
    body = request.body
    return f"/v1/tariffs/{segment(body['tariff_id'])}" if isinstance(body, dict) and "tariff_id" in body else None


def republish_previous_tariff(context: UndoContext) -> Compensation | CannotUndo:
    """POST /v1/tariffs → publish the prices in force before the version as a newer version.

    Readings already rated at the undone version's prices stay rated so (billing never re-rates into the
    past: adjustments correct them); from the compensating version on, the earlier prices apply again. A
    version still ahead is overtaken one second after it takes effect.
    """
    body = context.request.body
    if context.before_missing:
        return CannotUndo("this was the tariff's first version; a tariff is never deleted: publish a corrected "
                          "version instead")
    tariff, published = context.before_json, body if isinstance(body, dict) else None
    if not isinstance(tariff, dict) or published is None:
        return CannotUndo("the tariff before the new version was not kept")
    effective = datetime.fromisoformat(published["effective_from"])
    earlier = [v for v in tariff["versions"] if datetime.fromisoformat(v["effective_from"]) < effective]
    if not earlier:
        return CannotUndo("no earlier version of the tariff was in force before this one")
    previous = earlier[-1]
    start = max(context.now, effective) + TARIFF_MARGIN
    version: dict[str, Any] = {name: previous[name] for name in _VERSION_FIELDS}
    return Compensation("POST", "/v1/tariffs", {
        "tariff_id": tariff["tariff_id"], "version_id": f"undo-{published['version_id']}"[:128],
        "utility": tariff["utility"], "unit": tariff["unit"], "currency": tariff["currency"],
        "tier_period": tariff["tier_period"], "effective_from": start.isoformat(), **version,
        "description": f"undoes version {published['version_id']}: {context.reason}"[:2000]})


def _account_before(request: ActionRequest) -> str:
    return f"/v1/accounts/{segment(request.path_params['account_id'])}"


def restore_settings(context: UndoContext) -> Compensation | CannotUndo:
    """PUT /v1/accounts/{account_id}/settings → the settings before the change."""
    account = context.before_json
    if not isinstance(account, dict) or "settings" not in account:
        return CannotUndo("the account's settings before the change were not kept")
    return Compensation("PUT", f"{_account_before(context.request)}/settings",
                        {**account["settings"], "changed_by": context.actor})


def end_meter_link(context: UndoContext) -> Compensation | CannotUndo:
    """POST /v1/accounts/{account_id}/meters → unlink the meter from when the link began (if the request said
    when; else from the undo on: consumption rated in between stays on the account)."""
    body = context.request.body
    if not isinstance(body, dict) or "meter_id" not in body:
        return CannotUndo("the link's request was not kept")
    query = f"?at={segment(body['from'])}" if body.get("from") else ""
    return Compensation("DELETE", f"{_account_before(context.request)}/meters/{segment(body['meter_id'])}"
                                  f"{query}{'&' if query else '?'}reason=operator")


def restore_meter_link(context: UndoContext) -> Compensation | CannotUndo:
    """DELETE /v1/accounts/{account_id}/meters/{meter_id} → link the meter again, at the same tariff, from the
    moment it was unlinked (or from the undo on)."""
    account, meter_id = context.before_json, context.request.path_params["meter_id"]
    if not isinstance(account, dict):
        return CannotUndo("the account before the unlink was not kept")
    link = next((m for m in reversed(account.get("meters", [])) if m["meter_id"] == meter_id and m["active"]), None)
    if link is None:
        return CannotUndo(f"meter {meter_id} was not linked to the account when it was unlinked")
    body: dict[str, Any] = {"meter_id": meter_id, "utility": link["utility"], "tariff_id": link["tariff_id"],
                            "reason": "operator"}
    if context.request.query.get("at"):
        body["from"] = context.request.query["at"]
    return Compensation("POST", f"{_account_before(context.request)}/meters", body)


_NO_REVERSAL = ("money received is not taken back by undo: the API has no reversal or refund of a single "
                "credit yet (post a correction through the ledger's adjustment process)")

UNDO = UndoRegistry(
    undoable={
        "POST /v1/tariffs": Undoable(republish_previous_tariff, _tariff_before),
        "PUT /v1/accounts/{account_id}/settings": Undoable(restore_settings, _account_before),
        "POST /v1/accounts/{account_id}/meters": Undoable(end_meter_link),
        "DELETE /v1/accounts/{account_id}/meters/{meter_id}": Undoable(restore_meter_link, _account_before),
    },
    final={
        "POST /v1/payments": _NO_REVERSAL,
        "POST /v1/payments/callbacks/{provider}": _NO_REVERSAL,
        "POST /v1/recharges/batch": _NO_REVERSAL,
        "POST /v1/subsidies/batch": _NO_REVERSAL,
        "POST /v1/payment-sandbox/{order_id}/confirm": _NO_REVERSAL,
        "POST /v1/accounts/{account_id}/payment-orders": "a payment order is not withdrawn: unpaid, it expires by "
                                                         "itself after 15 minutes; paid, it is money received, "
                                                         "which undo does not take back",
        "POST /v1/accounts": "an account is never deleted; close it with a move-out if it should not exist",
        "POST /v1/accounts/{account_id}/move-out": "a move-out refunded the balance and closed the account; "
                                                   "open a new account instead",
        "POST /v1/accounts/{account_id}/room-change": "a room change moved the balance; change rooms back instead",
    },
)
