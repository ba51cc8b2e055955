"""The gate every command passes before it is handled: whose it is, proven. Pure.

`CommandGate.check` reads the command's proof (the `countersign-proof` record header, a
compact JWS: `engine.trust.jws`), finds the issuer's key in the trust store, verifies the
signature, the times (against the clock value it is given) and that the proof was made for
these very bytes and this command id. The result is the principal who sent the command
(`Proven`) or a refusal that names why (`Refused`: unsigned, bad signature, expired, not yet
valid, replayed, unknown issuer, subject not allowed). `bind` then puts the proven principal
into the command's own "who" field, refusing a command whose field names someone else.

Unsigned commands pass only when the gate allows them (a development setting the worker
logs loudly); their principal is then the free text they carry, in canonical form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final, assert_never

from engine.log.port import Headers
from engine.trust.jws import BadToken, VerifyKey, check, command_digest, parse, read_header
from engine.trust.principal import canonical_principal
from engine.trust.store import Issuer, TrustStore
from events.commands import (
    CancelRun,
    Command,
    ForkRun,
    LiftQuarantine,
    ResumeRun,
    StartRun,
    SubmitDecision,
    command_id_of,
)
from events.limits import MAX_ECHO_CHARS, clip

__all__ = [
    "PROOF_HEADER",
    "CommandGate",
    "Proven",
    "Refused",
    "bind",
    "principal_field",
]

PROOF_HEADER: Final = "countersign-proof"

UNSIGNED: Final = "unsigned"
BAD_SIGNATURE: Final = "bad signature"
EXPIRED: Final = "expired"
NOT_YET_VALID: Final = "not yet valid"
REPLAYED: Final = "replayed"
UNKNOWN_ISSUER: Final = "unknown issuer"
NOT_ALLOWED: Final = "subject not allowed"
FORGED: Final = "forged principal"


@dataclass(frozen=True, slots=True)
class Proven:
    """Who sent a command: `principal` in canonical form; `roles` the issuer asserted."""

    principal: str
    roles: frozenset[str] = frozenset()
    issuer: str = ""
    signed: bool = False


@dataclass(frozen=True, slots=True)
class Refused:
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"refused ({self.kind}): {self.detail}"


@dataclass(frozen=True, slots=True)
class CommandGate:
    store: TrustStore = field(default_factory=TrustStore)
    require_signed: bool = True
    leeway_s: int = 60
    """Clock skew tolerated on `exp` and `iat`."""

    def check(
        self, command: Command, value: bytes, headers: Headers, now_s: int
    ) -> Proven | Refused:
        proofs = [v for k, v in headers if k == PROOF_HEADER]
        if not proofs:
            if self.require_signed:
                return Refused(
                    UNSIGNED, "this worker accepts only signed commands (docs/signing.md)"
                )
            return Proven(canonical_principal(_stated(command)))
        if len(proofs) > 1:
            return Refused(BAD_SIGNATURE, f"{len(proofs)} proofs on one command")
        try:  # one strict parse serves the key lookup and the signature check
            token = parse(proofs[0].decode("ascii"))
            issuer_name, kid = token.names()
        except (UnicodeDecodeError, BadToken) as exc:
            return self._malformed(proofs[0], exc)
        found = self._key(issuer_name, kid)
        if isinstance(found, Refused):
            return found
        issuer, key = found
        try:
            claims = check(token, key)
        except BadToken as exc:
            return Refused(BAD_SIGNATURE, _echo(str(exc)))
        return self._claims(command, value, claims, issuer.name, now_s)

    def _key(self, issuer_name: str, kid: str) -> tuple[Issuer, VerifyKey] | Refused:
        issuer = self.store.issuers.get(issuer_name)
        if issuer is None:
            return Refused(UNKNOWN_ISSUER, f"{_echo(issuer_name)!r} is not a trusted issuer")
        key = issuer.keys.get(kid)
        if key is None:
            return Refused(
                UNKNOWN_ISSUER, f"issuer {issuer.name!r} has no key {_echo(kid)!r} (rotated out?)"
            )
        return issuer, key

    def _malformed(self, proof: bytes, error: Exception) -> Refused:
        """A proof the strict parse refused: refused as before that parse was shared, by a
        lenient read of the names it gives (an unknown issuer or key is said so) and else as
        a bad signature (PyJWS refused such a token before it checked the signature)."""
        try:
            found = self._key(*read_header(proof.decode("ascii")))
        except (UnicodeDecodeError, BadToken) as exc:
            return Refused(BAD_SIGNATURE, f"the proof is malformed: {_echo(str(exc))}")
        return found if isinstance(found, Refused) else Refused(BAD_SIGNATURE, _echo(str(error)))

    def _claims(
        self,
        command: Command,
        value: bytes,
        claims: Mapping[str, object],
        issuer_name: str,
        now_s: int,
    ) -> Proven | Refused:
        issuer = self.store.issuers[issuer_name]
        exp, iat, sub = claims.get("exp"), claims.get("iat"), claims.get("sub")
        if type(exp) is not int or type(iat) is not int:
            return Refused(BAD_SIGNATURE, "a proof needs whole-second iat and exp claims")
        if now_s > exp + self.leeway_s:
            return Refused(EXPIRED, f"the proof expired {now_s - exp} s ago")
        if iat > now_s + self.leeway_s:
            return Refused(NOT_YET_VALID, f"the proof is issued {iat - now_s} s in the future")
        if claims.get("cmd") != command_digest(value):
            return Refused(REPLAYED, "the proof was made for other bytes than this command's")
        if claims.get("jti") != command_id_of(command):
            return Refused(REPLAYED, "the proof was made for another command id")
        if not isinstance(sub, str) or not canonical_principal(sub):
            return Refused(BAD_SIGNATURE, "a proof needs a subject (sub)")
        if not issuer.may_sign_for(sub):
            return Refused(NOT_ALLOWED, f"issuer {issuer.name!r} may not sign for {_echo(sub)!r}")
        roles: frozenset[str] = frozenset()
        if issuer.roles_claim is not None:
            claimed = claims.get(issuer.roles_claim, [])
            if isinstance(claimed, list):
                roles = frozenset(canonical_principal(r) for r in claimed if isinstance(r, str))
        return Proven(issuer.principal(sub), roles, issuer.name, signed=True)


def principal_field(command: Command) -> str:
    """The name of the command's own "who" field."""
    match command:
        case StartRun() | ForkRun():
            return "requested_by"
        case SubmitDecision():
            return "decided_by"
        case CancelRun():
            return "cancelled_by"
        case LiftQuarantine():
            return "lifted_by"
        case ResumeRun():
            return "resumed_by"
        case _:  # pragma: no cover - the union is closed; mypy checks every arm is here
            assert_never(command)


def bind(command: Command, proven: Proven) -> Command | Refused:
    """`command` with its "who" field set to the proven principal; refused when the field
    names somebody else (an empty field is filled in)."""
    name = principal_field(command)
    stated = _stated(command)
    if proven.signed and stated and canonical_principal(stated) != proven.principal:
        return Refused(
            FORGED,
            f"{name} names {_echo(stated)!r} but the proof is signed for {proven.principal!r}",
        )
    if stated == proven.principal:
        return command
    return replace(command, **{name: proven.principal})  # type: ignore[arg-type]


def _stated(command: Command) -> str:
    value = getattr(command, principal_field(command))
    return value if isinstance(value, str) else ""


def _echo(value: str) -> str:
    return clip(value, MAX_ECHO_CHARS)
