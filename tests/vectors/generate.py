"""Writes tests/vectors/commands.json: signed commands another implementation can check.

    .venv/bin/python -m tests.vectors.generate

The keys are fixed (their private parts are published: they are test keys, trust them
nowhere), Ed25519 signatures are deterministic, and the claims are fixed, so the file only
changes when the format does. `tests/unit/test_signing_vectors.py` checks every vector.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from engine.trust.gate import PROOF_HEADER
from engine.trust.jws import SigningKey, command_digest, sign
from events.codec import Codec
from events.commands import CancelRun, Command, StartRun, SubmitDecision, command_id_of

HERE = Path(__file__).parent
ISSUER = "https://idp.example.com"
NOW = 1_800_000_000
KEY = SigningKey(
    "vector-key-1", ISSUER, "EdDSA", ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
)
ROGUE = SigningKey(
    "vector-key-1",
    ISSUER,
    "EdDSA",
    ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))),
)
STRANGER = SigningKey(
    "other-1",
    "https://evil.example",
    "EdDSA",
    ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32)),
)

DECISION = SubmitDecision(
    decision_id="6f1c1e0a-5d4b-4c9e-9a57-0d8f3f1c2b7a",
    run_id="0b9f2a64-1f0e-4a4f-8d2e-3c5b7a9d1e20",
    interrupt_id="ca5aac21-d7ff-51a1-89cd-c0f36aad324b",
    kind="approve",
    decided_by="alice",
    issued_at_us=NOW * 1_000_000,
    reason="checked the order",
)
START = StartRun(
    command_id="3d6f4b1e-8a2c-4f7d-9b0e-5c1a2d3e4f50",
    run_id="0b9f2a64-1f0e-4a4f-8d2e-3c5b7a9d1e20",
    agent="refund",
    input={"order_id": "A-17", "amount": 2400},
    requested_by="bob",
    issued_at_us=NOW * 1_000_000,
)
CANCEL = CancelRun(
    command_id="9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
    run_id="0b9f2a64-1f0e-4a4f-8d2e-3c5b7a9d1e20",
    cancelled_by="bob",
    issued_at_us=NOW * 1_000_000,
)


def claims(command: Command, value: bytes, sub: str, iat: int = NOW) -> dict[str, object]:
    return {"sub": sub, "iat": iat, "exp": iat + 3600, "jti": command_id_of(command),
            "cmd": command_digest(value)}  # fmt: skip


def vector(name: str, command: Command, signer: SigningKey, sub: str, expect: dict[str, str],
           *, signed_over: Command | None = None, iat: int = NOW) -> dict[str, object]:  # fmt: skip
    codec = Codec()
    value = codec.encode(command)
    over = codec.encode(signed_over) if signed_over is not None else value
    made = claims(signed_over or command, over, sub, iat)
    token = sign(made, signer)
    return {
        "name": name,
        "command_type": type(command).__name__,
        "value_base64": base64.b64encode(value).decode(),
        "value_sha256": command_digest(value),
        "headers": {PROOF_HEADER: token},
        "claims": {**made, "iss": signer.issuer},
        "now": NOW,
        "expect": expect,
    }


def main() -> None:
    public = KEY.public().jwk
    vectors = [
        vector("a decision signed by alice", DECISION, KEY, "alice", {"principal": "alice"}),
        vector("a start signed by bob", START, KEY, "bob", {"principal": "bob"}),
        vector("a cancel signed by bob", CANCEL, KEY, "bob", {"principal": "bob"}),
        vector("alice's proof carried onto another decision",
               replace(DECISION, kind="reject"), KEY, "alice", {"refused": "replayed"},
               signed_over=DECISION),
        vector("an expired proof", DECISION, KEY, "alice", {"refused": "expired"},
               iat=NOW - 7200),
        vector("signed by another key under the trusted kid", DECISION, ROGUE, "alice",
               {"refused": "bad signature"}),
        vector("an issuer the deployment does not trust", DECISION, STRANGER, "alice",
               {"refused": "unknown issuer"}),
        vector("decided_by names someone else than the signer", DECISION, KEY, "mallory",
               {"refused": "forged principal"}),
    ]  # fmt: skip
    document = {
        "about": "Countersign command proofs (docs/signing.md). Test keys only.",
        "proof_header": PROOF_HEADER,
        "trusted": {"issuer": ISSUER, "jwks": {"keys": [public]}},
        "signing_key_jwk": KEY.private_jwk(),
        "leeway_seconds": 60,
        "vectors": vectors,
    }
    (HERE / "commands.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
