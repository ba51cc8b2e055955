"""Compact JWS over a command's exact bytes, and over anchors: sign, read, verify. Pure.

The one module that imports PyJWT (and `cryptography`'s key types); everything else holds
`SigningKey` and `VerifyKey`, our own wrappers. Only asymmetric algorithms are accepted,
each tied to its key type (EdDSA for Ed25519 keys, ES256 for P-256 keys): never `none`,
never an HMAC, never an algorithm the token names for a key of another type.

A command's proof (docs/signing.md) is a JWT whose claims bind the command:

    header  {"alg": "EdDSA", "kid": KEY_ID, "typ": "countersign-command+jwt"}
    claims  {"iss": ISSUER, "sub": PRINCIPAL, "iat": SECONDS, "exp": SECONDS,
             "jti": COMMAND_ID, "cmd": SHA256_HEX_OF_THE_RECORD_VALUE, ...roles}

so a valid signature over one command's bytes cannot be carried onto another command.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm
from jwt.api_jws import PyJWS

from events.json import JsonObject

__all__ = [
    "ALGORITHMS",
    "COMMAND_TYP",
    "MAX_TOKEN_CHARS",
    "BadToken",
    "SigningKey",
    "VerifyKey",
    "command_digest",
    "generate_key",
    "read_claims",
    "read_header",
    "sign",
    "verify",
]

COMMAND_TYP = "countersign-command+jwt"
MAX_TOKEN_CHARS = 8_192
"""A proof is a few hundred characters; anything longer is refused before it is parsed."""
MAX_ANCHOR_CHARS = 4_194_304
"""Anchors carry chain heads (about 120 characters each), so they may be long."""
ALGORITHMS = ("EdDSA", "ES256")
_JWS = PyJWS(algorithms=list(ALGORITHMS))


class BadToken(ValueError):
    """The token is malformed, or its signature does not verify with the key given."""


def command_digest(value: bytes) -> str:
    """What a proof's `cmd` claim holds: the sha256 of the record value, lower-case hex."""
    return hashlib.sha256(value).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A public key of an issuer (or of a worker, for anchors)."""

    kid: str
    algorithm: str
    key: Any  # a cryptography public key; its type is checked against `algorithm`
    jwk: JsonObject

    @staticmethod
    def from_jwk(jwk: Mapping[str, Any]) -> VerifyKey:
        """A public JWK (`kty` OKP/Ed25519 or EC/P-256, with a `kid`); private parts ignored."""
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise BadToken("a trusted key needs a kid")
        public = {k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk}
        algorithm, key = _public_key(public)
        return VerifyKey(kid, algorithm, key, {**public, "kid": kid, "alg": algorithm})


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key with its id and the issuer it signs as."""

    kid: str
    issuer: str
    algorithm: str
    key: Any  # a cryptography private key

    @staticmethod
    def from_jwk(jwk: Mapping[str, Any], *, issuer: str | None = None) -> SigningKey:
        """A private JWK (`d` present). The issuer comes from `iss` in the JWK unless given."""
        kid, iss = jwk.get("kid"), issuer or jwk.get("iss")
        if not isinstance(kid, str) or not kid or not isinstance(iss, str) or not iss:
            raise BadToken("a signing key needs a kid and an issuer (iss)")
        if "d" not in jwk:
            raise BadToken(f"key {kid} has no private part (d)")
        text = json.dumps({k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y", "d")})
        if jwk.get("kty") == "OKP":
            okp = OKPAlgorithm.from_jwk(text)
            if not isinstance(okp, ed25519.Ed25519PrivateKey):
                raise BadToken(f"key {kid}: only Ed25519 OKP keys are accepted")
            return SigningKey(kid, iss, "EdDSA", okp)
        if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            curve = ECAlgorithm.from_jwk(text)
            if not isinstance(curve, ec.EllipticCurvePrivateKey):
                raise BadToken(f"key {kid}: not a private P-256 key")
            return SigningKey(kid, iss, "ES256", curve)
        raise BadToken(f"key {kid}: use an Ed25519 (OKP) or P-256 (EC) key")

    def private_jwk(self) -> JsonObject:
        tool = OKPAlgorithm if self.algorithm == "EdDSA" else ECAlgorithm
        jwk: JsonObject = json.loads(tool.to_jwk(self.key))
        return {**jwk, "kid": self.kid, "iss": self.issuer, "alg": self.algorithm}

    def public(self) -> VerifyKey:
        return VerifyKey.from_jwk(self.private_jwk())


def generate_key(kid: str, issuer: str, algorithm: str = "ES256") -> SigningKey:
    """A new key pair (randomness is the caller's to take: this draws from the OS)."""
    if algorithm == "EdDSA":
        return SigningKey(kid, issuer, algorithm, ed25519.Ed25519PrivateKey.generate())
    if algorithm == "ES256":
        return SigningKey(kid, issuer, algorithm, ec.generate_private_key(ec.SECP256R1()))
    raise BadToken(f"algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}")


def sign(claims: Mapping[str, Any], key: SigningKey, *, typ: str = COMMAND_TYP) -> str:
    """A compact JWS of `claims` (their `iss` is the key's issuer)."""
    headers = {"kid": key.kid, "typ": typ}
    return jwt.encode({**claims, "iss": key.issuer}, key.key, key.algorithm, headers=headers)


def read_header(token: str, limit: int = MAX_TOKEN_CHARS) -> tuple[str, str]:
    """The (issuer, kid) a token names, unverified: only to find the key to verify it with
    (a plain parse: PyJWT's unverified decode costs as much again as the check itself)."""
    if len(token) > limit:
        raise BadToken(f"{len(token)} characters is over the {limit}-character limit")
    parts = token.split(".")
    if len(parts) != 3:
        raise BadToken("not a compact JWS: it has not three parts")
    header, claims = _segment(parts[0]), _segment(parts[1])
    kid, iss = header.get("kid"), claims.get("iss")
    if not isinstance(kid, str) or not isinstance(iss, str):
        raise BadToken("the token names no issuer (iss) or no key (kid)")
    return iss, kid


def read_claims(token: str) -> JsonObject:
    """A token's claims, unverified (a worker reading back its own last anchor)."""
    if len(token) > MAX_ANCHOR_CHARS:
        raise BadToken(f"{len(token)} characters is over the {MAX_ANCHOR_CHARS}-character limit")
    parts = token.split(".")
    if len(parts) != 3:
        raise BadToken("not a compact JWS: it has not three parts")
    return _segment(parts[1])  # type: ignore[return-value]


def verify(token: str, key: VerifyKey, *, typ: str = COMMAND_TYP) -> JsonObject:
    """The claims, if `key` signed `token` with its own algorithm; else `BadToken`. Times
    (exp, iat, nbf) are not checked here: the caller checks them against its own clock."""
    limit = MAX_TOKEN_CHARS if typ == COMMAND_TYP else MAX_ANCHOR_CHARS
    if len(token) > limit:
        raise BadToken(f"{len(token)} characters is over the {limit}-character limit")
    try:
        # One parse: PyJWS checks the signature and hands back the header and the payload
        # (jwt.decode would parse the token again and validate claims we check ourselves).
        verified = _JWS.decode_complete(token, key.key, algorithms=[key.algorithm])
    except jwt.PyJWTError as exc:
        raise BadToken(str(exc)) from exc
    header = verified["header"]
    if header.get("alg") != key.algorithm:
        raise BadToken(f"alg {header.get('alg')!r} is not {key.algorithm} (key {key.kid})")
    if header.get("typ") != typ:
        raise BadToken(f"typ {header.get('typ')!r} is not {typ}")
    try:
        claims = json.loads(verified["payload"])
    except (ValueError, RecursionError) as exc:
        raise BadToken(f"the claims are not JSON: {exc}") from exc
    if not isinstance(claims, dict):
        raise BadToken("the claims are not a JSON object")
    return claims


def _segment(part: str) -> dict[str, object]:
    try:
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, binascii.Error, RecursionError) as exc:  # RecursionError: [[[[…
        raise BadToken(f"not a compact JWS: {exc}") from exc
    if not isinstance(data, dict):
        raise BadToken("not a compact JWS: a part is not a JSON object")
    return data


def _public_key(jwk: Mapping[str, Any]) -> tuple[str, Any]:
    text = json.dumps(dict(jwk))
    try:
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            okp = OKPAlgorithm.from_jwk(text)
            if isinstance(okp, ed25519.Ed25519PrivateKey):
                okp = okp.public_key()
            return "EdDSA", okp
        if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            curve = ECAlgorithm.from_jwk(text)
            if isinstance(curve, ec.EllipticCurvePrivateKey):
                curve = curve.public_key()
            return "ES256", curve
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise BadToken(f"not a usable public key: {exc}") from exc
    raise BadToken("only Ed25519 (OKP) and P-256 (EC) keys are trusted")
