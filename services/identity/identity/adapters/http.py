"""Identity's management API: users, clients, the caller's own identity, and key rotation.

Tenant admins manage their own tenant; a platform admin may act in another through X-Tenant-Id. Another
tenant's user or client answers 404, never 403. Auditors may read the lists (who holds which role is part
of what they audit) but change nothing. Generated passwords and secrets are in the answer once, never again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from amiflow_runtime.auth import Permission, Role, needs
from amiflow_runtime.http import Caller, RuntimeDep
from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from identity.app import Conflict, Credentials, NewClient, NewUser, NotFound
from identity.core.access import Forbidden, SelfLockout
from identity.core.credentials import Client, InvalidCredential, Reach, User, checked_reach

router = APIRouter(prefix="/v1", tags=["credentials"])

MANAGE = needs(Permission.MANAGE_ACCESS)
SEE = needs(Permission.MANAGE_ACCESS, Permission.AUDIT)
ANYONE = needs(*Permission)  # every role has some permission: any authenticated caller
NO_STORE = {"Cache-Control": "no-store"}
Site = Annotated[str, Field(min_length=1, max_length=64)]
Duty = Annotated[str, Field(min_length=1, max_length=32)]
T = TypeVar("T")


async def _answered(call: Awaitable[T]) -> T:
    """The core's refusals as HTTP answers with their reasons."""
    try:
        return await call
    except NotFound as exc:
        raise HTTPException(404, detail={"problem": "not_found", "reason": str(exc)}) from None
    except Forbidden as exc:
        raise HTTPException(403, detail={"problem": "forbidden", "reason": str(exc)}) from None
    except (Conflict, SelfLockout) as exc:
        raise HTTPException(409, detail={"problem": "conflict", "reason": str(exc)}) from None
    except InvalidCredential as exc:
        raise _invalid(str(exc)) from None


def _invalid(reason: str) -> RequestValidationError:
    """A 422 in the shape of FastAPI's own (create_app renders it with the reason)."""
    return RequestValidationError([{"loc": ("body",), "msg": reason, "type": "value_error"}])


def _reach(build: Callable[[], Reach]) -> Reach:
    try:
        return build()
    except InvalidCredential as exc:
        raise _invalid(str(exc)) from None


class ReachBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: list[Role] = Field(min_length=1)
    sites: list[Site] | None = Field(None, description="an operator's buildings; absent: all of the tenant's")
    duties: list[Duty] | None = Field(None, description="an operator's utilities; absent: all")


class UserBody(ReachBody):
    username: str = Field(min_length=1, max_length=64)
    account_id: str | None = Field(None, min_length=1, max_length=64, description="a customer's own account")


class UserChange(BaseModel):
    """The whole of what a user may do. PUT replaces it, so every field is required: a forgotten `sites`
    must not widen an operator to every site, nor a forgotten `disabled` enable a user again."""

    model_config = ConfigDict(extra="forbid")

    roles: list[Role] = Field(min_length=1)
    sites: list[Site] | None = Field(description="an operator's buildings; null: all of the tenant's")
    duties: list[Duty] | None = Field(description="an operator's utilities; null: all")
    account_id: str | None = Field(min_length=1, max_length=64, description="a customer's account; else null")
    disabled: bool


class PasswordBody(BaseModel):
    """Empty: an administrator resets the password to a generated one. With both fields: the user chooses."""

    model_config = ConfigDict(extra="forbid")

    current_password: str | None = Field(None, max_length=256)
    new_password: str | None = Field(None, max_length=256)


class ClientBody(ReachBody):
    name: str = Field(min_length=1, max_length=200, description="what the client is, for people")
    scopes: list[Permission] | None = Field(None, description="narrows what the roles allow; absent: all of it")


class UserView(BaseModel):
    username: str
    tenant: str
    roles: list[Role]
    sites: list[str] | None
    duties: list[str] | None
    account_id: str | None
    disabled: bool
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    password_changed_at: datetime


class NewUserView(BaseModel):
    user: UserView
    password: str = Field(description="shown this once; only its hash is kept")


class ClientView(BaseModel):
    client_id: str
    tenant: str
    name: str
    roles: list[Role]
    scopes: list[Permission] | None
    sites: list[str] | None
    duties: list[str] | None
    revoked: bool
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    revoked_by: str | None


class NewClientView(BaseModel):
    client: ClientView
    client_secret: str = Field(description="shown this once; only its hash is kept")


class NewPasswordView(BaseModel):
    password: str = Field(description="shown this once; only its hash is kept")


class MeView(BaseModel):
    subject: str
    tenant: str = Field(description="the tenant the caller belongs to")
    acting_tenant: str = Field(description="the tenant this call acts in (a platform admin may choose another)")
    roles: list[Role]
    permissions: list[Permission]
    sites: list[str] | None
    duties: list[str] | None
    account_id: str | None


class RotationView(BaseModel):
    kid: str
    retired_kid: str | None


def _sorted(values: Any) -> list[Any] | None:
    return sorted(values) if values is not None else None


def user_view(user: User) -> UserView:
    r = user.reach
    return UserView(username=user.username, tenant=user.tenant, roles=sorted(r.roles), sites=_sorted(r.sites),
                    duties=_sorted(r.duties), account_id=r.account_id, disabled=user.disabled,
                    created_at=user.created_at, created_by=user.created_by, updated_at=user.updated_at,
                    updated_by=user.updated_by, password_changed_at=user.password_changed_at)


def client_view(client: Client) -> ClientView:
    r = client.reach
    return ClientView(client_id=client.client_id, tenant=client.tenant, name=client.name, roles=sorted(r.roles),
                      scopes=_sorted(r.scopes), sites=_sorted(r.sites), duties=_sorted(r.duties),
                      revoked=client.disabled, created_at=client.created_at, created_by=client.created_by,
                      revoked_at=client.disabled_at, revoked_by=client.disabled_by)


@router.post("/users", openapi_extra=MANAGE, status_code=201, response_model=NewUserView,
             responses={409: {"description": "The username is taken"}})
async def create_user(body: UserBody, runtime: RuntimeDep, caller: Caller, response: Response) -> NewUserView:
    """A user of the caller's tenant, with a generated password shown in this answer only."""
    reach = _reach(lambda: checked_reach(body.roles, sites=body.sites, duties=body.duties,
                                         account_id=body.account_id))
    user, password = await _answered(Credentials(runtime).create_user(caller, NewUser(body.username, reach)))
    response.headers.update(NO_STORE)
    return NewUserView(user=user_view(user), password=password)


@router.get("/users", openapi_extra=SEE, response_model=list[UserView])
async def list_users(runtime: RuntimeDep, caller: Caller, after: Annotated[str | None, Query(max_length=64)] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[UserView]:
    """The tenant's users by username; `after` continues from the last one of the previous page."""
    return [user_view(u) for u in await Credentials(runtime).users(caller, after=after, limit=limit)]


@router.get("/users/{username}", openapi_extra=SEE, response_model=UserView,
            responses={404: {"description": "No such user in this tenant"}})
async def get_user(username: str, runtime: RuntimeDep, caller: Caller) -> UserView:
    return user_view(await _answered(Credentials(runtime).user(caller, username)))


@router.put("/users/{username}", openapi_extra=MANAGE, response_model=UserView,
            responses={403: {"description": "A role the caller cannot grant"},
                       404: {"description": "No such user in this tenant"},
                       409: {"description": "The caller would lock themselves out"}})
async def change_user(username: str, body: UserChange, runtime: RuntimeDep, caller: Caller) -> UserView:
    """Replace a user's roles, sites, duties and account, and enable or disable them. Tokens already issued
    keep what they say until they expire (minutes): that is when a change or a disabling takes effect."""
    reach = _reach(lambda: checked_reach(body.roles, sites=body.sites, duties=body.duties,
                                         account_id=body.account_id))
    return user_view(await _answered(Credentials(runtime).change_user(caller, username, reach, body.disabled)))


@router.post("/users/{username}/password", openapi_extra=ANYONE, response_model=NewPasswordView,
             responses={200: {"description": "The generated password (a reset)"},
                        204: {"description": "The user's own new password is set"},
                        403: {"description": "Not the user, not their administrator, or a wrong current password"},
                        404: {"description": "No such user in this tenant"}})
async def set_password(username: str, body: PasswordBody, runtime: RuntimeDep, caller: Caller) -> Any:
    """With no body fields, an administrator resets the password to a generated one (shown once); with
    current_password and new_password, the user chooses their own."""
    credentials = Credentials(runtime)
    if body.new_password is None and body.current_password is None:
        password = await _answered(credentials.reset_password(caller, username))
        return JSONResponse(NewPasswordView(password=password).model_dump(), headers=NO_STORE)
    if body.new_password is None or body.current_password is None:
        raise _invalid("choosing a password needs current_password and new_password")
    await _answered(credentials.set_own_password(caller, username, body.current_password, body.new_password))
    return Response(status_code=204)


@router.post("/clients", openapi_extra=MANAGE, status_code=201, response_model=NewClientView)
async def create_client(body: ClientBody, runtime: RuntimeDep, caller: Caller, response: Response) -> NewClientView:
    """A client (another system) of the caller's tenant, with a generated secret shown in this answer only."""
    reach = _reach(lambda: checked_reach(body.roles, sites=body.sites, duties=body.duties, scopes=body.scopes,
                                         for_client=True))
    client, secret = await _answered(Credentials(runtime).create_client(caller, NewClient(body.name, reach)))
    response.headers.update(NO_STORE)
    return NewClientView(client=client_view(client), client_secret=secret)


@router.get("/clients", openapi_extra=SEE, response_model=list[ClientView])
async def list_clients(runtime: RuntimeDep, caller: Caller,
                       include_revoked: Annotated[bool, Query()] = False) -> list[ClientView]:
    return [client_view(c) for c in await Credentials(runtime).clients(caller, include_revoked=include_revoked)]


@router.delete("/clients/{client_id}", openapi_extra=MANAGE, status_code=204,
               responses={404: {"description": "No such client in this tenant"}})
async def revoke_client(client_id: str, runtime: RuntimeDep, caller: Caller) -> Response:
    """Revoke a client: it gets no new token; the ones it holds expire within the client token lifetime."""
    await _answered(Credentials(runtime).revoke_client(caller, client_id))
    return Response(status_code=204)


@router.get("/me", openapi_extra=ANYONE, response_model=MeView)
async def me(caller: Caller) -> MeView:
    """Who the token says the caller is: subject, tenant, roles and what they allow."""
    return MeView(subject=caller.subject, tenant=caller.home_tenant, acting_tenant=caller.tenant,
                  roles=sorted(caller.roles), permissions=sorted(caller.permissions), sites=_sorted(caller.sites),
                  duties=_sorted(caller.duties), account_id=caller.account_id)


@router.post("/keys/rotate", openapi_extra=MANAGE, response_model=RotationView,
             responses={403: {"description": "Only a platform admin rotates the signing key"}})
async def rotate_keys(runtime: RuntimeDep, caller: Caller) -> RotationView:
    """Retire the signing key now and sign with a new one; tokens of the old key stay valid until they expire."""
    kid, retired = await _answered(Credentials(runtime).rotate_keys(caller))
    return RotationView(kid=kid, retired_kid=retired)

