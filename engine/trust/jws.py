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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from events.json import JsonObject

__all__ = [
    "ALGORITHMS",
    "COMMAND_TYP",
    "MAX_TOKEN_CHARS",
    "BadToken",
    "SigningKey",
    "Token",
    "VerifyKey",
    "check",
    "command_digest",
    "generate_key",
    "parse",
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
    parts = _parts(token, limit)
    return _names(_segment(parts[0]), _segment(parts[1]))


def read_claims(token: str) -> JsonObject:
    """A token's claims, unverified (a worker reading back its own last anchor)."""
    return _segment(_parts(token, MAX_ANCHOR_CHARS)[1])  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Token:
    """A compact JWS read strictly (each part canonical base64url, as PyJWT reads it), its
    header and claims parsed once; nothing about it is verified yet (`check` does that)."""

    header: dict[str, object]
    claims: dict[str, object]
    signing_input: bytes
    signature: bytes

    def names(self) -> tuple[str, str]:
        """The (issuer, kid) the token names: only to find the key to check it with."""
        return _names(self.header, self.claims)


def parse(token: str, limit: int = MAX_TOKEN_CHARS) -> Token:
    """`token` read once, as strictly as PyJWT reads it before it verifies; else `BadToken`."""
    parts = _parts(token, limit)
    header, claims = _json(_strict_b64(parts[0])), _json(_strict_b64(parts[1]))
    signature = _strict_b64(parts[2])
    return Token(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def check(token: Token, key: VerifyKey, *, typ: str = COMMAND_TYP) -> dict[str, object]:
    """The claims, if `key` signed `token` with its own algorithm; else `BadToken`. Every
    check PyJWS makes before it verifies (`kid` a string, `crit` only a present `b64`, no detached
    payload, `alg` the one allowed) is made here, then the signature with `cryptography`
    itself: PyJWS's own path cost ten times the curve's verify (docs/performance.md)."""
    header = token.header
    if "kid" in header and not isinstance(header["kid"], str):
        raise BadToken("Key ID header parameter must be a string")
    if "crit" in header:
        crit = header["crit"]
        if (
            not isinstance(crit, list)
            or not crit
            or any(e != "b64" for e in crit)
            or ("b64" not in header)
        ):
            raise BadToken(f"unsupported or malformed crit header {_short(crit)}")
    if header.get("b64", True) is False:
        raise BadToken("a detached payload (b64 false) is not accepted")
    if header.get("alg") != key.algorithm:
        raise BadToken(f"alg {_short(header.get('alg'))} is not {key.algorithm} (key {key.kid})")
    if header.get("typ") != typ:
        raise BadToken(f"typ {_short(header.get('typ'))} is not {typ}")
    if not _signed(key, token.signing_input, token.signature):
        raise BadToken("Signature verification failed")
    return token.claims


def verify(token: str, key: VerifyKey, *, typ: str = COMMAND_TYP) -> JsonObject:
    """The claims, if `key` signed `token` with its own algorithm; else `BadToken`. Times
    (exp, iat, nbf) are not checked here: the caller checks them against its own clock."""
    limit = MAX_TOKEN_CHARS if typ == COMMAND_TYP else MAX_ANCHOR_CHARS
    return check(parse(token, limit), key, typ=typ)  # type: ignore[return-value]


_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_ECDSA = ec.ECDSA(hashes.SHA256())


def _strict_b64(part: str) -> bytes:
    """PyJWS's reading of a part: at most two trailing `=` (and then a whole quantum), only
    the url-safe alphabet, no impossible length, and canonical (no stray low bits)."""
    stripped = part.rstrip("=")
    padding = len(part) - len(stripped)
    if padding > 2 or (padding and len(part) % 4) or len(stripped) % 4 == 1:
        raise BadToken("not a compact JWS: a part has invalid base64url padding")
    if not _B64URL.fullmatch(stripped):
        raise BadToken("not a compact JWS: a part is not base64url")
    raw = stripped.encode("ascii")
    decoded = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != raw:
        raise BadToken("not a compact JWS: a part is not canonical base64url")
    return decoded


def _json(data: bytes) -> dict[str, object]:
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: [[[[…
        raise BadToken(f"not a compact JWS: {exc}") from exc
    if not isinstance(parsed, dict):
        raise BadToken("not a compact JWS: a part is not a JSON object")
    return parsed


def _signed(key: VerifyKey, message: bytes, signature: bytes) -> bool:
    """Whether `signature` over `message` verifies with `key` (a key of another type than its
    algorithm's, or a raw ES256 signature of another length, never does)."""
    public = key.key
    try:
        if key.algorithm == "ES256":
            if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
                public.curve, ec.SECP256R1
            ):
                return False
            if len(signature) != 64:  # r and s, 32 bytes each (RFC 7518 §3.4)
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            public.verify(der, message, _ECDSA)
            return True
        if key.algorithm == "EdDSA" and isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, message)
            return True
    except InvalidSignature:
        return False
    return False


def _short(value: object) -> str:
    return repr(value)[:80]


def _segment(part: str) -> dict[str, object]:
    """A part read leniently (for the names a refusal gives, and a worker's own anchors)."""
    try:
        data = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except binascii.Error as exc:
        raise BadToken(f"not a compact JWS: {exc}") from exc
    return _json(data)


def _parts(token: str, limit: int) -> list[str]:
    if len(token) > limit:
        raise BadToken(f"{len(token)} characters is over the {limit}-character limit")
    parts = token.split(".")
    if len(parts) != 3:
        raise BadToken("not a compact JWS: it has not three parts")
    return parts


def _names(header: Mapping[str, object], claims: Mapping[str, object]) -> tuple[str, str]:
    kid, iss = header.get("kid"), claims.get("iss")
    if not isinstance(kid, str) or not isinstance(iss, str):
        raise BadToken("the token names no issuer (iss) or no key (kid)")
    return iss, kid


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
