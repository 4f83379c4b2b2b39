"""How notify's operator actions are undone: the compensating request for each, or why there is none.

A contact is saved or deleted as a whole, so its undo puts back the contact as it was before (kept in the
attempt record by reading it just before the change), or deletes one that did not exist. A webhook
subscription is undone by deleting it; a deleted subscription cannot come back, because its secret —
which the integrator verifies deliveries with — was shown once and is gone.
"""

from __future__ import annotations

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

_CONTACT_FIELDS = ("name", "email", "phone", "wechat_openid", "channels", "language", "quiet_start", "quiet_end",
                   "time_zone", "opted_out")


def _contact_path(request: ActionRequest) -> str:
    return f"/v1/contacts/{segment(request.path_params['contact_id'])}"


def _put_back(context: UndoContext, view: dict[str, Any]) -> Compensation:
    contact = view["contact"]
    body = {"audience": view["audience"], "account_id": view["account_id"], "role": view["role"],
            "site": view["site"], **{name: contact.get(name) for name in _CONTACT_FIELDS},
            "updated_by": context.actor}
    return Compensation("PUT", _contact_path(context.request), body)


def restore_contact_after_save(context: UndoContext) -> Compensation | CannotUndo:
    """PUT /v1/contacts/{contact_id} → the contact before (DELETE if it did not exist)."""
    if context.before_missing:
        return Compensation("DELETE", _contact_path(context.request))
    if not isinstance(context.before_json, dict):
        return CannotUndo("the contact before the change was not kept")
    return _put_back(context, context.before_json)


def restore_deleted_contact(context: UndoContext) -> Compensation | CannotUndo:
    """DELETE /v1/contacts/{contact_id} → save the deleted contact again."""
    if not isinstance(context.before_json, dict):
        return CannotUndo("the deleted contact was not kept")
    return _put_back(context, context.before_json)


def unsubscribe_new_webhook(context: UndoContext) -> Compensation | CannotUndo:
    """POST /v1/webhook-subscriptions → delete the subscription it created."""
    subscription = context.answer_id("subscription_id")
    if subscription is None:
        return CannotUndo("the answer named no subscription")
    return Compensation("DELETE", f"/v1/webhook-subscriptions/{segment(subscription)}")


UNDO = UndoRegistry(
    undoable={
        "PUT /v1/contacts/{contact_id}": Undoable(restore_contact_after_save, _contact_path),
        "DELETE /v1/contacts/{contact_id}": Undoable(restore_deleted_contact, _contact_path),
        "POST /v1/webhook-subscriptions": Undoable(unsubscribe_new_webhook),
    },
    final={
        "DELETE /v1/webhook-subscriptions/{subscription_id}": "a deleted subscription's secret is gone: subscribe "
                                                              "again and give the integrator the new secret",
    },
)
