"""Who may manage whose credentials.

- Credentials are managed in the tenant a call acts in; only a platform admin acts in another tenant
  (amiflow_runtime.auth.principal_of refuses anyone else), so another tenant's users are never found.
- Nobody grants a role they do not hold: an admin role holds the roles below it (a tenant admin may make
  operators, integrators, auditors, customers and other tenant admins); only a platform admin makes
  platform admins.
- The same line protects existing credentials: a credential holding a role the caller could not grant is
  out of the caller's reach (a tenant admin cannot disable, edit or reset a platform admin).
- Nobody locks themselves out: a caller cannot disable their own user or drop their own right to manage.
"""

from __future__ import annotations

from collections.abc import Mapping

from amiflow_runtime.auth import ROLE_PERMISSIONS, Permission, Principal, Role

from identity.core.credentials import Reach

GRANTS: Mapping[Role, frozenset[Role]] = {
    Role.PLATFORM_ADMIN: frozenset(Role),
    Role.TENANT_ADMIN: frozenset(Role) - {Role.PLATFORM_ADMIN},
}


class Forbidden(Exception):
    """The caller may not do this (answered 403 with the reason)."""


class SelfLockout(Exception):
    """The change would lock the caller out of their own access (answered 409 with the reason)."""


def grantable(roles: frozenset[Role]) -> frozenset[Role]:
    """The roles a holder of `roles` may give to others."""
    return frozenset().union(*(GRANTS.get(r, frozenset()) for r in roles))


def _managing(actor: Principal) -> frozenset[Role]:
    if not actor.may(Permission.MANAGE_ACCESS):
        raise Forbidden("managing credentials needs the manage_access permission")
    return grantable(actor.roles)


def check_grant(actor: Principal, roles: frozenset[Role]) -> None:
    """Forbidden unless `actor` may give every one of `roles`."""
    beyond = roles - _managing(actor)
    if beyond:
        raise Forbidden(f"you cannot grant {', '.join(sorted(beyond))}: nobody grants a role they do not hold "
                        "(a platform admin can)")


def check_reach(actor: Principal, held: frozenset[Role]) -> None:
    """Forbidden unless `actor` may manage a credential that holds `held` (it could have granted them)."""
    beyond = held - _managing(actor)
    if beyond:
        raise Forbidden(f"this credential holds {', '.join(sorted(beyond))}, which you cannot grant, so you "
                        "cannot change it")


def is_self(actor: Principal, username: str, tenant: str) -> bool:
    """True when `actor` is the user `username` of `tenant` (a client is never a user)."""
    return actor.subject == username and actor.home_tenant == tenant


def check_not_locking_out(actor: Principal, username: str, tenant: str, reach: Reach, disabled: bool) -> None:
    """SelfLockout when the change to the actor's own user would disable it or take away manage_access."""
    if not is_self(actor, username, tenant):
        return
    if disabled:
        raise SelfLockout("you cannot disable your own user: ask another administrator")
    keeps: frozenset[Permission] = frozenset().union(*(ROLE_PERMISSIONS[r] for r in reach.roles))
    if Permission.MANAGE_ACCESS not in keeps:
        raise SelfLockout("you cannot take away your own right to manage access: ask another administrator")
