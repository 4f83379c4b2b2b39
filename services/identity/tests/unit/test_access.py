"""Nobody grants a role they do not hold; admins hold the roles below theirs; nobody locks themselves out."""

from __future__ import annotations

import pytest
from amiflow_runtime.auth import Permission, Principal, Role, principal_of
from identity.core.access import (
    Forbidden,
    SelfLockout,
    check_grant,
    check_not_locking_out,
    check_reach,
    grantable,
)
from identity.core.credentials import Reach


def caller(*roles: Role, subject: str = "boss", tenant: str = "riverside", scope: str | None = None) -> Principal:
    claims: dict[str, object] = {"sub": subject, "tenant": tenant, "roles": [r.value for r in roles]}
    if scope is not None:
        claims["scope"] = scope
    if Role.CUSTOMER in roles:
        claims["account_id"] = "acc-1"
    return principal_of(claims)


def test_a_platform_admin_may_grant_every_role() -> None:
    assert grantable(frozenset({Role.PLATFORM_ADMIN})) == frozenset(Role)


def test_a_tenant_admin_may_grant_every_role_but_platform_admin() -> None:
    admin = caller(Role.TENANT_ADMIN)
    check_grant(admin, frozenset({Role.OPERATOR, Role.CUSTOMER, Role.AUDITOR, Role.INTEGRATOR, Role.TENANT_ADMIN}))
    with pytest.raises(Forbidden, match="cannot grant platform_admin"):
        check_grant(admin, frozenset({Role.OPERATOR, Role.PLATFORM_ADMIN}))


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.AUDITOR, Role.INTEGRATOR, Role.CUSTOMER])
def test_roles_without_manage_access_grant_nothing(role: Role) -> None:
    with pytest.raises(Forbidden, match="manage_access"):
        check_grant(caller(role), frozenset({Role.CUSTOMER}))


def test_an_admin_token_narrowed_to_read_manages_nothing() -> None:
    with pytest.raises(Forbidden, match="manage_access"):
        check_grant(caller(Role.TENANT_ADMIN, scope="read"), frozenset({Role.OPERATOR}))


def test_a_tenant_admin_cannot_touch_a_platform_admins_credential() -> None:
    check_reach(caller(Role.TENANT_ADMIN), frozenset({Role.OPERATOR}))
    with pytest.raises(Forbidden, match="holds platform_admin"):
        check_reach(caller(Role.TENANT_ADMIN), frozenset({Role.PLATFORM_ADMIN}))
    check_reach(caller(Role.PLATFORM_ADMIN), frozenset({Role.PLATFORM_ADMIN}))


def test_an_admin_cannot_disable_themselves_or_drop_their_own_manage_access() -> None:
    admin = caller(Role.TENANT_ADMIN, subject="boss")
    keeps = Reach(frozenset({Role.TENANT_ADMIN}))
    check_not_locking_out(admin, "boss", "riverside", keeps, disabled=False)
    with pytest.raises(SelfLockout, match="disable your own"):
        check_not_locking_out(admin, "boss", "riverside", keeps, disabled=True)
    with pytest.raises(SelfLockout, match="manage access"):
        check_not_locking_out(admin, "boss", "riverside", Reach(frozenset({Role.OPERATOR})), disabled=False)


def test_the_same_name_in_another_tenant_is_not_the_caller() -> None:
    admin = caller(Role.PLATFORM_ADMIN, subject="boss", tenant="demo")
    check_not_locking_out(admin, "boss", "riverside", Reach(frozenset({Role.OPERATOR})), disabled=True)
    assert Permission.MANAGE_ACCESS in admin.permissions
