"""How the console's actions are undone: the compensating request for each, or why there is none.

The runtime performs the compensation through this API with the undoer's token (amiflow_runtime.audit_undo);
main.py registers UNDO. A command is taken back by cancelling it, which the API allows only while it has not
been sent: once a device may have acted, the cancel answers 409 and the undo fails saying so — send the
opposite command instead. Configuration replaced as a whole is put back as it was (the runtime keeps the state
before the change in the attempt record).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from amiflow_runtime.audit_undo import CannotUndo, Compensation, Undoable, UndoContext, UndoRegistry, segment

_NOTE_LIMIT = 2000


def _note(context: UndoContext) -> str:
    return f"undo: {context.reason}"[:_NOTE_LIMIT]


def cancel_requested_command(context: UndoContext) -> Compensation | CannotUndo:
    """POST /v1/commands (and an accepted proposal) → cancel the command it created, while not yet sent."""
    if context.status != 201:
        return CannotUndo("this request created no command (it repeated an earlier one): undo that one instead")
    command_id = context.answer_id("command_id")
    if command_id is None:
        return CannotUndo("the answer named no command")
    return Compensation("POST", f"/v1/commands/{segment(command_id)}/cancel",
                        {"cancelled_by": context.actor, "reason": _note(context)})


def _exemption_path(context: UndoContext) -> str:
    return f"/v1/exemptions/{segment(context.request.path_params['account_id'])}"


def _restore_exemption(context: UndoContext, previous: Any) -> Compensation:
    if date.fromisoformat(previous["until"]) < context.now.date():
        # The earlier exemption has run out meanwhile: without one is what it would be now.
        return Compensation("DELETE", _exemption_path(context))
    return Compensation("PUT", _exemption_path(context), {"until": previous["until"], "reason": previous["reason"],
                                                          "updated_by": context.actor})


def restore_exemption_after_put(context: UndoContext) -> Compensation | CannotUndo:
    """PUT /v1/exemptions/{account_id} → the exemption before it, or none (DELETE) if there was none."""
    if context.before_missing:
        return Compensation("DELETE", _exemption_path(context))
    if context.before_json is None:
        return CannotUndo("the exemption before the change was not kept")
    return _restore_exemption(context, context.before_json)


def restore_exemption_after_delete(context: UndoContext) -> Compensation | CannotUndo:
    """DELETE /v1/exemptions/{account_id} → put the removed exemption back, unless it has ended meanwhile."""
    previous = context.before_json
    if previous is None:
        return CannotUndo("the removed exemption was not kept")
    if date.fromisoformat(previous["until"]) < context.now.date():
        return CannotUndo(f"the removed exemption ended on {previous['until']}: there is nothing to put back")
    return _restore_exemption(context, previous)


def restore_cut_off_policy(context: UndoContext) -> Compensation | CannotUndo:
    """PUT /v1/cut-off-policy → the policy before it (the service's default, set explicitly, if there was none:
    the API has no way to go back to "not set")."""
    previous = context.before_json
    if previous is None or "policy" not in previous:
        return CannotUndo("the cut-off policy before the change was not kept")
    return Compensation("PUT", "/v1/cut-off-policy", {**previous["policy"], "updated_by": context.actor})


def restore_automation_rule(context: UndoContext) -> Compensation | CannotUndo:
    """PUT /v1/automation-rules/{rule_id} → the rule before it; a rule that did not exist is disabled (the API
    cannot delete a rule)."""
    rule_id = context.request.path_params["rule_id"]
    rules = context.before_json
    if not isinstance(rules, list):
        return CannotUndo("the automation rules before the change were not kept")
    previous = next((r["rule"] for r in rules if r.get("rule", {}).get("rule_id") == rule_id), None)
    path = f"/v1/automation-rules/{segment(rule_id)}"
    if previous is not None:
        return Compensation("PUT", path, {**previous, "updated_by": context.actor})
    body = context.request.body
    if not isinstance(body, dict):
        return CannotUndo("the new rule's request was not kept, so it cannot be disabled as it was")
    return Compensation("PUT", path, {**body, "enabled": False, "updated_by": context.actor})


def _exemption_before(request: Any) -> str:
    return f"/v1/exemptions/{segment(request.path_params['account_id'])}"


UNDO = UndoRegistry(
    undoable={
        "POST /v1/commands": Undoable(cancel_requested_command),
        "POST /v1/proposals/{proposal_id}/accept": Undoable(cancel_requested_command),
        "PUT /v1/exemptions/{account_id}": Undoable(restore_exemption_after_put, _exemption_before),
        "DELETE /v1/exemptions/{account_id}": Undoable(restore_exemption_after_delete, _exemption_before),
        "PUT /v1/cut-off-policy": Undoable(restore_cut_off_policy, lambda _request: "/v1/cut-off-policy"),
        "PUT /v1/automation-rules/{rule_id}": Undoable(restore_automation_rule,
                                                        lambda _request: "/v1/automation-rules"),
    },
    final={
        "POST /v1/commands/{command_id}/cancel": "a cancelled command stays cancelled: request it again",
        "POST /v1/commands/batch": "a batch is not undone as one action: cancel its commands one by one "
                                   "(POST /v1/commands/{id}/cancel)",
        "POST /v1/operations/account-opened": "a service operation's commands are cancelled one by one",
        "POST /v1/operations/move-out": "a service operation's commands are cancelled one by one",
        "POST /v1/operations/meter-replacement": "a service operation's commands are cancelled one by one",
        "POST /v1/operations/parameter-download": "a service operation's commands are cancelled one by one",
    },
)
