"""The gate a command passes at the worker's boundary: each way a proof can be wrong is
refused with its own reason; a good one yields the principal, in canonical form."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace

import jwt
import pytest

from engine.trust.access import Access
from engine.trust.gate import PROOF_HEADER, CommandGate, Proven, Refused, bind
from engine.trust.jws import SigningKey, command_digest, generate_key, sign
from engine.trust.principal import canonical_principal
from engine.trust.signing import proof_header
from engine.trust.store import TrustError, TrustStore
from events.codec import Codec
from events.commands import CancelRun, StartRun, SubmitDecision

CODEC = Codec()
NOW = 1_800_000_000
ALICE_KEY = generate_key("alice-1", "https://idp.example")
ROGUE_KEY = generate_key("alice-1", "https://idp.example")  # same names, another key


def store(*keys: SigningKey, **settings: object) -> TrustStore:
    issuers: dict[str, dict[str, object]] = {}
    for key in keys:
        entry = issuers.setdefault(key.issuer, {"keys": [], **settings})
        entry["keys"].append(key.public().jwk)  # type: ignore[attr-defined]
    return TrustStore.parse({"issuers": issuers})  # type: ignore[arg-type]


GATE = CommandGate(store(ALICE_KEY))


def decision(**changes: object) -> SubmitDecision:
    base = SubmitDecision(
        decision_id="d-1",
        run_id="r-1",
        interrupt_id="i-1",
        kind="approve",
        decided_by="alice",
        issued_at_us=NOW * 1_000_000,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def signed(command: SubmitDecision | StartRun | CancelRun, key: SigningKey = ALICE_KEY, **kw: int):
    value = CODEC.encode(command)
    return value, (proof_header(value, command, key, now_s=kw.get("now_s", NOW), **{
        k: v for k, v in kw.items() if k != "now_s"}),)  # fmt: skip


def check(command, value, headers, gate=GATE, now=NOW):  # type: ignore[no-untyped-def]
    return gate.check(command, value, headers, now)


def test_a_good_proof_yields_its_principal() -> None:
    command = decision()
    value, headers = signed(command)

    proven = check(command, value, headers)

    assert proven == Proven("alice", frozenset(), "https://idp.example", signed=True)
    assert bind(command, proven) == command


def test_unsigned_is_refused_unless_allowed() -> None:
    command = decision(decided_by="Alice ")
    value = CODEC.encode(command)

    refused = check(command, value, ())
    allowed = check(command, value, (), gate=CommandGate(require_signed=False))

    assert isinstance(refused, Refused)
    assert refused.kind == "unsigned"
    assert allowed == Proven("alice")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("signed by another key with the same kid", "bad signature"),
        ("not a token", "bad signature"),
        ("a flipped signature byte", "bad signature"),
        ("alg none", "bad signature"),
        ("HS256 with the public key as the secret", "bad signature"),
        ("unknown issuer", "unknown issuer"),
        ("unknown key id", "unknown issuer"),
        ("expired", "expired"),
        ("issued in the future", "not yet valid"),
        ("onto another decision", "replayed"),
        ("onto the same decision with other content", "replayed"),
        ("two proofs", "bad signature"),
        ("a megabyte of proof", "bad signature"),
    ],
)
def test_every_bad_proof_is_refused_with_its_reason(name: str, kind: str) -> None:
    command = decision()
    value, headers = signed(command)
    token = headers[0][1].decode()
    forged = FORGERIES[name](command, value, token)

    result = check(*forged)

    assert isinstance(result, Refused), name
    assert result.kind == kind, (name, str(result))
    assert str(result).startswith(f"refused ({kind}): ")


def _claims(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def _unsigned_token(header: dict[str, object], claims: dict[str, object], sig: bytes) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join(
        [part(json.dumps(header).encode()), part(json.dumps(claims).encode()), part(sig)]
    )


def _with(token: str) -> tuple[tuple[str, bytes]]:
    return ((PROOF_HEADER, token.encode()),)


def _other_decision(command, value, token):  # type: ignore[no-untyped-def]
    other = decision(decision_id="d-2", interrupt_id="i-2")
    return other, CODEC.encode(other), _with(token)


def _other_content(command, value, token):  # type: ignore[no-untyped-def]
    other = decision(kind="reject")  # same decision id, other bytes
    return other, CODEC.encode(other), _with(token)


def _hs256(token: str) -> str:
    """The classic confusion: an HMAC keyed with the issuer's public key (which anyone has)."""
    header = {"alg": "HS256", "kid": "alice-1", "typ": "countersign-command+jwt"}
    unsigned = _unsigned_token(header, _claims(token), b"").rsplit(".", 1)[0]
    secret = json.dumps(ALICE_KEY.public().jwk).encode()
    mac = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _flip(token: str) -> str:
    head, body, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[0] ^= 1
    return f"{head}.{body}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


FORGERIES = {
    "signed by another key with the same kid": lambda c, v, t: (c, *signed(c, ROGUE_KEY)),
    "not a token": lambda c, v, t: (c, v, _with("hello.world")),
    "a flipped signature byte": lambda c, v, t: (c, v, _with(_flip(t))),
    "alg none": lambda c, v, t: (
        c, v, _with(_unsigned_token({"alg": "none", "kid": "alice-1"}, _claims(t), b"")),
    ),
    "HS256 with the public key as the secret": lambda c, v, t: (c, v, _with(_hs256(t))),
    "unknown issuer": lambda c, v, t: (c, *signed(c, generate_key("k", "https://evil.example"))),
    "unknown key id": lambda c, v, t: (c, *signed(c, generate_key("alice-2", ALICE_KEY.issuer))),
    "expired": lambda c, v, t: (c, *signed(c, now_s=NOW - 7200, lifetime_s=3600)),
    "issued in the future": lambda c, v, t: (c, *signed(c, now_s=NOW + 3600)),
    "onto another decision": _other_decision,
    "onto the same decision with other content": _other_content,
    "two proofs": lambda c, v, t: (c, v, _with(t) + _with(t)),
    "a megabyte of proof": lambda c, v, t: (c, v, _with("a" * 1_000_000)),
}  # fmt: skip


def test_clock_skew_within_the_leeway_is_tolerated() -> None:
    command = decision()
    value, headers = signed(command, now_s=NOW + 30, lifetime_s=0)

    assert isinstance(check(command, value, headers, now=NOW), Proven)
    assert isinstance(check(command, value, headers, now=NOW + 89), Proven)
    assert isinstance(check(command, value, headers, now=NOW + 91), Refused)


def test_a_decision_naming_someone_else_than_its_signer_is_forged() -> None:
    command = decision(decided_by="bob")
    value, headers = signed(command, subject="alice")  # type: ignore[arg-type]
    proven = check(command, value, headers)
    assert isinstance(proven, Proven)

    bound = bind(command, proven)

    assert isinstance(bound, Refused)
    assert bound.kind == "forged principal"
    assert "decided_by names 'bob' but the proof is signed for 'alice'" in bound.detail


def test_an_empty_or_differently_written_principal_becomes_the_signers() -> None:
    for stated in ("", "ALICE", " alice"):
        command = decision(decided_by=stated)
        value, headers = signed(command, subject="Alice")  # type: ignore[arg-type]
        proven = check(command, value, headers)
        assert isinstance(proven, Proven)

        bound = bind(command, proven)

        assert isinstance(bound, SubmitDecision)
        assert bound.decided_by == "alice"


def test_a_personal_issuer_signs_only_for_its_subjects() -> None:
    gate = CommandGate(store(ALICE_KEY, subjects=["alice"]))
    mine, theirs = decision(), decision(decided_by="bob")

    assert isinstance(check(mine, *signed(mine), gate=gate), Proven)
    refused = check(theirs, *signed(theirs), gate=gate)
    assert isinstance(refused, Refused)
    assert refused.kind == "subject not allowed"


def test_roles_count_only_from_an_issuer_given_a_roles_claim() -> None:
    command = decision()
    value, headers = signed(command, roles=["Finance"])  # type: ignore[arg-type]
    with_claim = CommandGate(store(ALICE_KEY, roles_claim="roles"))

    assert check(command, value, headers).roles == frozenset()  # type: ignore[union-attr]
    assert check(command, value, headers, gate=with_claim).roles == {"finance"}  # type: ignore[union-attr]


def test_a_prefixed_issuer_keeps_its_principals_apart() -> None:
    gate = CommandGate(store(ALICE_KEY, prefix="sso:"))
    command = decision(decided_by="")
    proven = check(command, *signed(command, subject="alice"), gate=gate)  # type: ignore[arg-type]

    assert isinstance(proven, Proven)
    assert proven.principal == "sso:alice"


def test_es256_keys_work_too() -> None:
    key = generate_key("p256", "gateway", "ES256")
    command = decision()

    assert isinstance(check(command, *signed(command, key), gate=CommandGate(store(key))), Proven)


def test_the_proof_binds_the_sha256_of_the_exact_bytes() -> None:
    command = decision()
    value, headers = signed(command)

    assert _claims(headers[0][1].decode())["cmd"] == command_digest(value)
    assert _claims(headers[0][1].decode())["jti"] == "d-1"


def test_canonical_principals() -> None:
    assert canonical_principal(" Bob ") == canonical_principal("bob") == "bob"
    assert canonical_principal("\uff22\uff4f\uff42") == "bob"  # full-width letters
    assert canonical_principal("STRASSE") == canonical_principal("straße")


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"issuers": []},
        {"issuers": {"x": {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}}},
        {"issuers": {"x": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AA"}]}}},
        {"issuers": {"x": {"jwks_uri": "http://idp.example/jwks"}}},
        {"issuers": {"x": {"surprise": 1}}},
        {"issuers": {}, "extra": 1},
    ],
)
def test_a_bad_trust_file_is_refused_with_the_reason(document: object) -> None:
    with pytest.raises(TrustError):
        TrustStore.parse(document)  # type: ignore[arg-type]


def test_access_rules_for_starting_cancelling_and_lifting() -> None:
    access = Access.parse(
        {
            "principals": {"Oscar": ["Operator"], "sam": ["support"]},
            "may_start": {"refund": ["role:support"], "*": ["carol"]},
            "may_lift": ["role:operator"],
        }
    )
    sam, oscar, carol = Proven("sam"), Proven("oscar"), Proven("carol")

    assert access.start_refusal(sam, "refund") == ""
    assert access.start_refusal(carol, "refund") != ""
    assert access.start_refusal(carol, "other") == ""
    assert access.start_refusal(sam, "other") != ""
    assert access.cancel_refusal(sam, requester="Sam") == ""
    assert access.cancel_refusal(oscar, requester="sam") == ""
    assert "may not cancel" in access.cancel_refusal(carol, requester="sam")
    assert access.lift_refusal(oscar) == ""
    assert access.lift_refusal(sam) != ""
    assert Access().lift_refusal(sam) == ""  # no may_lift: any proven principal
    assert access.cancel_refusal(Proven("x", frozenset({"operator"})), requester="sam") == ""


def test_sign_refuses_nothing_it_cannot_verify() -> None:
    token = sign({"sub": "a"}, ALICE_KEY)
    assert jwt.get_unverified_header(token) == {
        "alg": ALICE_KEY.algorithm,
        "kid": "alice-1",
        "typ": "countersign-command+jwt",
    }


def test_a_proof_nested_past_the_stack_is_refused_not_a_crash() -> None:
    command = decision()
    deep = base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=")

    refused = check(command, CODEC.encode(command), _with(f"{deep}.e30.x"))

    assert isinstance(refused, Refused)
    assert refused.kind == "bad signature"
