"""The platform operators' tools, working on the identity database directly (how the first admin is made).

    python -m identity.main api | worker | migrate          the service's processes
    python -m identity.main create-user --tenant T --username U --roles operator [--sites …] [--duties …]
    python -m identity.main create-client --tenant T --name N --roles integrator [--scopes read,ingest]
    python -m identity.main rotate-keys
    python -m identity.main list [users|clients|keys] [--tenant T]
    python -m identity.main bootstrap --admin-password-file F --simulator-client-file F   (used by `amiflow up`)

Also `amiflow identity <tool> …`. A generated password or secret is printed once, here, and never again;
bootstrap writes its secrets to files (mode 0600) and prints only their paths.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from amiflow_runtime.auth import Permission, Role
from amiflow_runtime.process import configure_process

from identity.adapters import db, store
from identity.app import Conflict, Credentials, NewClient, NewUser
from identity.config import IdentitySettings
from identity.core.credentials import InvalidCredential, checked_reach
from identity.core.keys import published_until
from identity.runtime import IdentityRuntime

log = logging.getLogger("identity.tools")
BOOTSTRAP_ADMIN = "admin"


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - the tools' output is for the operator at the terminal


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text is not None else None


def _operator() -> str:
    return f"cli:{getpass.getuser()}"


def write_secret_file(path: Path, text: str) -> None:
    """Write `text` to `path` readable by this user only (0600), replacing it whole or not at all."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    handle = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(handle, text.encode())
    finally:
        os.close(handle)
    os.replace(draft, path)


async def _create_user(runtime: IdentityRuntime, args: argparse.Namespace) -> int:
    reach = checked_reach(_names(args.roles) or (), sites=_names(args.sites), duties=_names(args.duties),
                          account_id=args.account_id)
    user, password = await Credentials(runtime).add_user(args.tenant, NewUser(args.username, reach), by=_operator())
    say(f"user {user.username} of tenant {user.tenant} created with roles {', '.join(sorted(reach.roles))}")
    say(f"password (shown this once): {password}")
    return 0


async def _create_client(runtime: IdentityRuntime, args: argparse.Namespace) -> int:
    reach = checked_reach(_names(args.roles) or (), sites=_names(args.sites), duties=_names(args.duties),
                          scopes=_names(args.scopes), for_client=True)
    client, secret = await Credentials(runtime).add_client(args.tenant, NewClient(args.name, reach), by=_operator())
    say(f"client {client.name!r} of tenant {client.tenant} created with roles {', '.join(sorted(reach.roles))}")
    say(f"client_id: {client.client_id}")
    say(f"client_secret (shown this once): {secret}")
    return 0


async def _rotate_keys(runtime: IdentityRuntime, args: argparse.Namespace) -> int:
    kid, retired = await runtime.keyring.rotate(f"rotated on demand by {_operator()}")
    say(f"signing with new key {kid}" + (f"; {retired} retired (published until its tokens expire)" if retired else ""))
    return 0


async def _list(runtime: IdentityRuntime, args: argparse.Namespace) -> int:
    async with runtime.sessions() as session:
        if args.what == "users":
            for u in await store.every_user(session, args.tenant):
                say(f"{u.tenant:<16} {u.username:<32} {','.join(sorted(u.reach.roles)):<28} "
                    f"{'disabled' if u.disabled else 'enabled'}")
        elif args.what == "clients":
            for c in await store.every_client(session, args.tenant):
                say(f"{c.tenant:<16} {c.client_id:<24} {','.join(sorted(c.reach.roles)):<28} "
                    f"{'revoked' if c.disabled else 'active':<8} {c.name}")
    if args.what == "keys":
        settings = runtime.identity_settings
        for key in await runtime.keyring.all_keys():
            until = published_until(key, longest_lifetime_s=settings.longest_token_lifetime_s,
                                    leeway_s=settings.auth_leeway_s)
            state = "active" if until is None else f"retired {key.retired_at:%Y-%m-%d %H:%M}, published until " \
                                                   f"{until:%Y-%m-%d %H:%M} UTC"
            say(f"{key.kid:<24} created {key.created_at:%Y-%m-%d %H:%M} UTC  {state}")
    return 0


async def _bootstrap(runtime: IdentityRuntime, args: argparse.Namespace) -> int:
    """The first admin and the simulator's client of `amiflow up`; nothing when they exist already."""
    settings = runtime.identity_settings
    credentials = Credentials(runtime)
    async with runtime.sessions() as session:
        admin = await store.user_named(session, BOOTSTRAP_ADMIN)
    password_file = Path(args.admin_password_file)
    if admin is None:
        reach = checked_reach([Role.PLATFORM_ADMIN])
        _user, password = await credentials.add_user(settings.default_tenant, NewUser(BOOTSTRAP_ADMIN, reach),
                                                     by="bootstrap")
        write_secret_file(password_file, password + "\n")
        say(f"platform admin '{BOOTSTRAP_ADMIN}' created; its password is in {password_file}")
    elif not await asyncio.to_thread(password_file.exists):
        say(f"platform admin '{BOOTSTRAP_ADMIN}' exists but {password_file} is gone: another platform admin can "
            f"reset its password (POST /v1/users/{BOOTSTRAP_ADMIN}/password), or make a new one with "
            "`amiflow identity create-user`")
    if args.simulator_client_file:
        await _simulator_client(runtime, Path(args.simulator_client_file))
    return 0


async def _simulator_client(runtime: IdentityRuntime, path: Path) -> None:
    tenant = runtime.identity_settings.default_tenant
    if await asyncio.to_thread(path.exists):
        known = json.loads(await asyncio.to_thread(path.read_text))
        async with runtime.sessions() as session:
            found = await store.client_named(session, str(known.get("client_id")))
        if found is not None and not found[0].disabled and found[0].tenant == tenant:
            return
    reach = checked_reach([Role.TENANT_ADMIN], for_client=True)
    client, secret = await Credentials(runtime).add_client(tenant, NewClient("fleet simulator (amiflow up)", reach),
                                                           by="bootstrap")
    write_secret_file(path, json.dumps({"client_id": client.client_id, "client_secret": secret}) + "\n")
    say(f"fleet simulator client {client.client_id} (tenant admin of {tenant}) created; its secret is in {path}")


TOOLS: dict[str, Callable[[IdentityRuntime, argparse.Namespace], Awaitable[int]]] = {
    "create-user": _create_user, "create-client": _create_client, "rotate-keys": _rotate_keys, "list": _list,
    "bootstrap": _bootstrap,
}


def _reach_options(parser: argparse.ArgumentParser, *, client: bool) -> None:
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--roles", required=True, help=f"comma-separated: {', '.join(r.value for r in Role)}")
    parser.add_argument("--sites", help="comma-separated buildings an operator is limited to (default: all)")
    parser.add_argument("--duties", help="comma-separated utilities an operator is limited to (default: all)")
    if client:
        parser.add_argument("--scopes", help=f"comma-separated permissions: {', '.join(p.value for p in Permission)}")


def parser() -> argparse.ArgumentParser:
    """The tools' argument parser."""
    top = argparse.ArgumentParser(prog="python -m identity.main", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="tool", required=True)
    user = sub.add_parser("create-user", help="a user with a generated password (printed once)")
    user.add_argument("--username", required=True)
    user.add_argument("--account-id", help="a customer's account")
    _reach_options(user, client=False)
    client = sub.add_parser("create-client", help="a client with a generated secret (printed once)")
    client.add_argument("--name", required=True, help="what the client is, for people")
    _reach_options(client, client=True)
    sub.add_parser("rotate-keys", help="retire the signing key and make a new one")
    listing = sub.add_parser("list", help="users, clients or signing keys")
    listing.add_argument("what", choices=["users", "clients", "keys"], nargs="?", default="users")
    listing.add_argument("--tenant", help="one tenant only (default: all)")
    boot = sub.add_parser("bootstrap", help="the first platform admin (and `amiflow up`'s simulator client)")
    boot.add_argument("--admin-password-file", required=True)
    boot.add_argument("--simulator-client-file")
    return top


async def _run(settings: IdentitySettings, migrations: Path, args: argparse.Namespace) -> int:
    runtime = IdentityRuntime(settings=settings, role="tool", migrations_dir=migrations, inbox=db.inbox,
                              outbox=db.outbox, dead_letter_topic="")
    try:
        await runtime.migrate()
        return await TOOLS[args.tool](runtime, args)
    finally:
        await runtime.engine.dispose()


def main(argv: Sequence[str], migrations: Path) -> int:
    """Run one tool; its exit code (2: the input or the settings cannot be used)."""
    args = parser().parse_args(list(argv))
    try:
        settings = IdentitySettings()
    except ValueError as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)  # noqa: T201 - logging is not set up yet
        return 2
    configure_process(settings, "tool")
    try:
        return asyncio.run(_run(settings, migrations, args))
    except (InvalidCredential, Conflict, ValueError) as exc:
        print(f"identity {args.tool}: {exc}", file=sys.stderr)  # noqa: T201
        return 2
