"""How identity's management actions are undone: the compensating request for each, or why there is none.

A role change is put back by changing the user again to what they had (kept in the attempt record by reading
the user just before the change); a user created by mistake is disabled (users are never deleted, so their
actions stay attributable); a client is revoked. Passwords, key rotations and issued tokens are final.
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

_REACH = ("roles", "sites", "duties", "account_id")


def _user(request: ActionRequest) -> str:
    return f"/v1/users/{segment(request.path_params['username'])}"


def restore_user(context: UndoContext) -> Compensation | CannotUndo:
    """PUT /v1/users/{username} → the roles, sites, duties, account and enabled state before the change."""
    previous: Any = context.before_json
    if not isinstance(previous, dict):
        return CannotUndo("the user before the change was not kept")
    return Compensation("PUT", _user(context.request),
                        {**{name: previous.get(name) for name in _REACH}, "disabled": previous.get("disabled", False)})


def disable_created_user(context: UndoContext) -> Compensation | CannotUndo:
    """POST /v1/users → disable the user it created, with the roles it was given."""
    body = context.request.body
    if context.status != 201 or not isinstance(body, dict) or "username" not in body:
        return CannotUndo("the request created no user, or was not kept")
    return Compensation("PUT", f"/v1/users/{segment(body['username'])}",
                        {**{name: body.get(name) for name in _REACH}, "disabled": True})


def revoke_created_client(context: UndoContext) -> Compensation | CannotUndo:
    """POST /v1/clients → revoke the client it created."""
    client_id = context.answer_id("client_id")
    if context.status != 201 or client_id is None:
        return CannotUndo("the request created no client")
    return Compensation("DELETE", f"/v1/clients/{segment(client_id)}")


UNDO = UndoRegistry(
    undoable={
        "PUT /v1/users/{username}": Undoable(restore_user, _user),
        "POST /v1/users": Undoable(disable_created_user),
        "POST /v1/clients": Undoable(revoke_created_client),
    },
    final={
        "DELETE /v1/clients/{client_id}": "a revoked client stays revoked: create a new client",
        "POST /v1/users/{username}/password": "a password is kept only as a hash and cannot be put back: reset it",
        "POST /v1/keys/rotate": "a retired signing key is not brought back",
        "POST /oauth/token": "an issued token cannot be taken back; it expires by itself (disable the user)",
    },
)
