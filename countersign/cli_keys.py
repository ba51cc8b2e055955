"""`countersign keys create | list | jwks`: the keys commands are signed with, and trusted by."""

from __future__ import annotations

import argparse
import json
from typing import Any

from countersign.settings import Settings
from countersign.trusting import trust_file
from engine.trust import keys
from engine.trust.loading import TrustLoader


def register(commands: Any) -> None:
    group = commands.add_parser("keys", help="signing keys: create, list, export the public JWKS")
    sub = group.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="a new key pair; the home's trust file trusts it")
    create.add_argument("--issuer", default="local", help="the issuer it signs as (iss)")
    create.add_argument("--subject", default=None, help="the only principal it may sign for")
    create.add_argument(
        "--alg",
        choices=["ES256", "EdDSA"],
        default="ES256",
        help="ES256 (default: verified in half the time of EdDSA here) or EdDSA",
    )
    create.add_argument("--default", action="store_true", help="sign the CLI's commands with it")
    create.add_argument("--json", action="store_true", help="machine-readable output")
    create.set_defaults(handler=create_key)
    listing = sub.add_parser("list", help="local signing keys and the trusted issuers")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=list_keys)
    jwks = sub.add_parser("jwks", help="print the public JWKS of the local keys (to trust)")
    jwks.add_argument("--issuer", default=None, help="only this issuer's keys")
    jwks.add_argument("--json", action="store_true", help="(the JWKS is JSON already)")
    jwks.set_defaults(handler=print_jwks)


async def create_key(settings: Settings, args: argparse.Namespace) -> int:
    made = keys.create_key(
        settings.home,
        issuer=args.issuer,
        subject=args.subject,
        algorithm=args.alg,
        default=True if args.default else None,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "kid": made.key.kid,
                    "issuer": made.key.issuer,
                    "algorithm": made.key.algorithm,
                    "subjects": list(made.subjects),
                    "default": made.default,
                    "private_key": str(made.path),
                    "trust_file": str(keys.trust_path(settings.home)),
                }
            )
        )
        return 0
    scope = f"signs for {made.subjects[0]} only" if made.subjects else "signs for anyone"
    print(f"created {made.key.kid} ({made.key.algorithm}, issuer {made.key.issuer}, {scope})")
    print(f"private key  {made.path} (keep it secret)")
    print(f"trusted in   {keys.trust_path(settings.home)}")
    if made.default:
        print("the CLI signs its commands with it (the default key)")
    return 0


async def list_keys(settings: Settings, args: argparse.Namespace) -> int:
    local = keys.list_keys(settings.home)
    store = await TrustLoader(trust_file(settings, _env())).load()
    if args.json:
        print(
            json.dumps(
                {
                    "keys": [
                        {
                            "kid": k.key.kid,
                            "issuer": k.key.issuer,
                            "algorithm": k.key.algorithm,
                            "subjects": list(k.subjects),
                            "default": k.default,
                            "development": k.development,
                        }
                        for k in local
                    ],
                    "trusted": {
                        name: {"kids": sorted(i.keys), "development": i.development}
                        for name, i in store.issuers.items()
                    },
                    "anchor_keys": sorted(store.anchor_keys),
                },
                indent=2,
            )
        )
        return 0
    print(f"signing keys in {settings.home / 'keys'}:")
    for k in local:
        flags = ", ".join(
            f for f in ("default" if k.default else "", "development" if k.development else "") if f
        )
        only = f" for {', '.join(k.subjects)}" if k.subjects else ""
        print(f"  {k.key.kid}  {k.key.algorithm}  issuer {k.key.issuer}{only}  {flags}".rstrip())
    if not local:
        print("  (none: `countersign keys create`)")
    print("trusted issuers:")
    for name, issuer in store.issuers.items():
        dev = "  (development)" if issuer.development else ""
        print(f"  {name}: {', '.join(sorted(issuer.keys)) or '(keys fetched at run time)'}{dev}")
    return 0


async def print_jwks(settings: Settings, args: argparse.Namespace) -> int:
    found = [
        k.key.public().jwk
        for k in keys.list_keys(settings.home)
        if args.issuer is None or k.key.issuer == args.issuer
    ]
    print(json.dumps({"keys": found}, indent=2))
    return 0


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
