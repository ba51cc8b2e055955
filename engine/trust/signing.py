"""Signing a command (Pure): the proof header for the exact bytes about to be published.

    value = codec.encode(command)
    headers = (codec.schema_header(value), proof_header(value, command, key, now_s=...))

The claims are those `engine.trust.gate` checks (docs/signing.md): `sub` (the principal the
command names, unless given), `iat`/`exp` in whole seconds, `jti` (the command id) and
`cmd` (sha256 of `value`, hex). Roles are added under `roles` only when asked for (an
issuer's roles count only if the trust file gives it a `roles_claim`).
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.trust.gate import PROOF_HEADER, principal_field
from engine.trust.jws import SigningKey, command_digest, sign
from events.commands import Command, command_id_of

__all__ = ["DEFAULT_LIFETIME_S", "proof_header"]

DEFAULT_LIFETIME_S = 3_600
"""How long a proof is good for. It must cover the time a command may wait in the topic
before a worker handles it (a backlog after an outage), and no longer."""


def proof_header(
    value: bytes,
    command: Command,
    key: SigningKey,
    *,
    now_s: int,
    lifetime_s: int = DEFAULT_LIFETIME_S,
    subject: str | None = None,
    roles: Sequence[str] = (),
) -> tuple[str, bytes]:
    sub = subject if subject is not None else str(getattr(command, principal_field(command)))
    claims: dict[str, object] = {
        "sub": sub,
        "iat": now_s,
        "exp": now_s + lifetime_s,
        "jti": command_id_of(command),
        "cmd": command_digest(value),
    }
    if roles:
        claims["roles"] = list(roles)
    return PROOF_HEADER, sign(claims, key).encode("ascii")
