"""`countersign serve` (the web inbox and its API) and `countersign web-users` (its local login).

    countersign web-users add alice --role support-lead     # asks for the password
    countersign serve --app examples.refund:app             # http://127.0.0.1:8766/

`serve` follows the approvals topic and reads the projections: run a worker and a projector
beside it (`countersign dev` runs all three). `--app` only lends the App's directory (who holds
which role) to the page's "what can I decide"; the workers judge every decision anyway.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from dataclasses import replace
from typing import Any

import structlog

from countersign import bootstrap
from countersign.cli_options import json_logs
from countersign.cli_processes import stop_on_signals
from countersign.logging import configure_logging
from countersign.settings import Settings
from engine.errors import ConfigurationError

log = structlog.get_logger(__name__)


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="the web inbox and its JSON API (Starlette)")
    serve.add_argument("--host", default=None, help="listen address (COUNTERSIGN_WEB_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (COUNTERSIGN_WEB_PORT)")
    serve.add_argument("--app", action="append", default=[],
                       help="module:attribute of an App whose directory lends roles")  # fmt: skip
    json_logs(serve)
    serve.set_defaults(handler=run_serve)

    users = commands.add_parser("web-users", help="the web inbox's local login users")
    actions = users.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add or change a user (asks for the password)")
    add.add_argument("name")
    add.add_argument("--role", action="append", default=[], help="a role (repeatable)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--json", action="store_true", help="machine-readable output")
    listing = actions.add_parser("list", help="the users and their roles")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    users.set_defaults(handler=run_users)


def web_settings(settings: Settings, args: argparse.Namespace) -> Any:
    from countersign.web.config import WebSettings

    try:
        found = WebSettings.from_env(settings.home)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    if getattr(args, "host", None):
        found = replace(found, host=args.host)
    if getattr(args, "port", None) is not None:
        found = replace(found, port=args.port)
    return found


def app_directory(specs: list[str]) -> dict[str, tuple[str, ...]]:
    """The roles the named Apps' directories give (canonical names), merged."""
    from countersign.web.users import canonical_principal

    merged: dict[str, set[str]] = {}
    for spec in specs:
        for name, roles in bootstrap.load_app(spec).directory.items():
            merged.setdefault(canonical_principal(name), set()).update(
                canonical_principal(r) for r in roles
            )
    return {k: tuple(sorted(v)) for k, v in merged.items()}


async def run_serve(settings: Settings, args: argparse.Namespace) -> int:
    from countersign.web.app import serve
    from countersign.web.signing import server_signer

    if args.json:
        configure_logging("json", settings.log_level)
    found = web_settings(settings, args)
    directory = app_directory(args.app)
    stop = stop_on_signals()
    async with (
        bootstrap.connected(settings, client_id="countersign-web", keep_database=True) as runtime,
        bootstrap.read_side(settings) as store,
        serve(found, runtime, store, signer=server_signer(settings), directory=directory) as web,
    ):
        print(f"web inbox: {web.url}/", flush=True)
        await stop.wait()
    return 0


async def run_users(settings: Settings, args: argparse.Namespace) -> int:
    from countersign.web.users import Users, UsersError, read_users, with_user, write_users

    path = web_settings(settings, args).users_file
    try:
        users = read_users(path) if path.exists() else Users()
    except UsersError as exc:
        raise ConfigurationError(str(exc)) from exc
    if args.action == "list":
        rows = {u.name: list(u.roles) for u in users.by_name.values()}
        print(
            json.dumps(rows)
            if args.json
            else "\n".join(f"{name}\t{', '.join(roles)}" for name, roles in sorted(rows.items()))
            or "(none)"
        )
        return 0
    password = _password(args.password_stdin)
    write_users(path, with_user(users, args.name, password, args.role))
    shown = {"user": args.name, "roles": args.role, "file": str(path)}
    print(json.dumps(shown) if args.json else f"{args.name} saved in {path}")
    return 0


def dev_users(path: Any, directory: dict[str, tuple[str, ...]]) -> list[str]:
    """`countersign dev`'s local users: when there is no users file yet, one per person of
    the App's directory (and `bob`, who starts the examples' runs), each with a new random
    password; the lines to print (the file keeps only hashes)."""
    import secrets

    from countersign.web.users import Users, with_user, write_users

    if path.exists():
        return [f"web users: {path} (countersign web-users add NAME changes them)"]
    users, lines = Users(), [f"web users made in {path} (shown once):"]
    for name in sorted({*directory, "bob"}):
        password = secrets.token_urlsafe(9)
        users = with_user(users, name, password, directory.get(name, ()))
        lines.append(f"  {name} / {password}")
    write_users(path, users)
    return lines


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ConfigurationError("the passwords differ")
    if len(password) < 8:
        raise ConfigurationError("use a password of at least 8 characters")
    return password
