"""The local login's users and the directory's roles (I/O: reads the files, draws salts).

A users file (`countersign web-users add`, mode 0600) holds hashed passwords, never the
passwords themselves:

    {"users": {"alice": {"password": "scrypt$16384$8$1$<salt hex>$<hash hex>",
                         "roles": ["support-lead"]}}}

Passwords are hashed with scrypt (the standard library's; N=2^14, r=8, p=1: about 16 MiB and
a few tens of milliseconds per try), compared in constant time. A user that is not in the file
costs the same time as a wrong password, so the login does not tell who exists.

The directory file is the workers' (`countersign.trusting.read_access`): its roles count for
the page's "what can I decide" too. Principals are compared in canonical form
(NFKC, case-folded, trimmed), as the workers compare them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from engine.errors import ConfigurationError
from engine.trust.loading import read_json

MAX_PASSWORD_CHARS = 1_024
_N, _R, _P = 2**14, 8, 1
_DUMMY = f"scrypt${_N}${_R}${_P}${'00' * 16}${'00' * 32}"


class UsersError(ValueError):
    """A users or directory file that cannot be used (the message names it and why)."""


def canonical_principal(name: str) -> str:
    """The form principals are compared in (the same as `engine.trust.principal`'s)."""
    return unicodedata.normalize("NFKC", name).strip().casefold()


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt" or len(password) > MAX_PASSWORD_CHARS:
            return False
        cost = (int(n), int(r), int(p))
        if cost != (_N, _R, _P):  # hostile parameters could make one check take minutes
            return False
        digest = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=cost[0], r=cost[1], p=cost[2], dklen=32
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), expected)


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password: str
    roles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Users:
    by_name: Mapping[str, User] = field(default_factory=dict)

    def login(self, name: str, password: str) -> User | None:
        """The user, if `password` is theirs; None otherwise (in the same time either way)."""
        user = self.by_name.get(canonical_principal(name))
        ok = check_password(password, user.password if user else _DUMMY)
        return user if ok and user is not None else None

    def to_json(self) -> dict[str, object]:
        return {
            "users": {
                u.name: {"password": u.password, "roles": list(u.roles)}
                for u in self.by_name.values()
            }
        }


def read_users(path: Path) -> Users:
    data = _read_json(path, "users file")
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, dict):
        raise UsersError(f'users file {path}: expected {{"users": {{name: {{...}}}}}}')
    found: dict[str, User] = {}
    for name, entry in users.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("password"), str):
            raise UsersError(f"users file {path}: user {name!r} has no password hash")
        found[canonical_principal(name)] = User(
            canonical_principal(name), entry["password"], _roles(entry.get("roles"), path)
        )
    return Users(MappingProxyType(found))


def write_users(path: Path, users: Users) -> None:
    """Writes the file with mode 0600 (it holds password hashes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(users.to_json(), out, indent=2, sort_keys=True)
    temporary.replace(path)


def with_user(users: Users, name: str, password: str, roles: Sequence[str]) -> Users:
    user = User(canonical_principal(name), hash_password(password), tuple(roles))
    return Users(MappingProxyType({**users.by_name, user.name: user}))


def _roles(value: object, path: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise UsersError(f"{path}: roles must be a list of names")
    return tuple(canonical_principal(r.removeprefix("role:")) for r in value)


def _read_json(path: Path, what: str) -> object:
    try:
        return read_json(path, what)
    except ConfigurationError as exc:
        raise UsersError(str(exc)) from exc
