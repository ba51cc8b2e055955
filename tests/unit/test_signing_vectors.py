"""The published test vectors (tests/vectors/commands.json) hold: each proof verifies or is
refused as the file says, its `cmd` is the sha256 of the exact bytes, and signing the same
claims with the published key gives the same token (Ed25519 is deterministic)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from engine.trust.gate import (
    PROOF_HEADER,
    CommandGate,
    Proven,
    Refused,
    bind,
    principal_field,
)
from engine.trust.jws import SigningKey, sign
from engine.trust.store import TrustStore
from events.codec import Codec

FILE = Path(__file__).parents[1] / "vectors" / "commands.json"
DOC = json.loads(FILE.read_text(encoding="utf-8"))
GATE = CommandGate(
    TrustStore.parse({"issuers": {DOC["trusted"]["issuer"]: DOC["trusted"]["jwks"]}}),
    leeway_s=DOC["leeway_seconds"],
)
KEY = SigningKey.from_jwk(DOC["signing_key_jwk"])


@pytest.mark.parametrize("vector", DOC["vectors"], ids=lambda v: v["name"])
def test_each_vector_verifies_or_is_refused_as_written(vector: dict) -> None:  # type: ignore[type-arg]
    value = base64.b64decode(vector["value_base64"])
    command = Codec().decode_command(value)
    headers = tuple((k, v.encode()) for k, v in vector["headers"].items())

    result = GATE.check(command, value, headers, vector["now"])
    if isinstance(result, Proven):
        result = bind(command, result)  # type: ignore[assignment]

    assert type(command).__name__ == vector["command_type"]
    assert hashlib.sha256(value).hexdigest() == vector["value_sha256"]
    if "principal" in vector["expect"]:
        assert not isinstance(result, Refused), str(result)
        assert getattr(result, principal_field(command)) == vector["expect"]["principal"]
    else:
        assert isinstance(result, Refused)
        assert result.kind == vector["expect"]["refused"]


@pytest.mark.parametrize(
    "vector",
    [v for v in DOC["vectors"] if v["claims"]["iss"] == KEY.issuer],
    ids=lambda v: v["name"],
)
def test_signing_the_claims_again_gives_the_same_token(vector: dict) -> None:  # type: ignore[type-arg]
    claims = {k: v for k, v in vector["claims"].items() if k != "iss"}
    token = vector["headers"][PROOF_HEADER]
    if "another key" in vector["name"]:
        return  # signed with a key the file does not publish
    assert sign(claims, KEY) == token
