"""Our JWS check against PyJWS's: every token PyJWS refuses before or at its signature check,
ours refuses too, and it accepts what PyJWS accepts (the check no longer goes through PyJWS)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.api_jws import PyJWS

from engine.trust.jws import COMMAND_TYP, BadToken, SigningKey, generate_key, sign, verify

ES256 = generate_key("k-1", "idp", "ES256")
EDDSA = generate_key("k-2", "idp", "EdDSA")
CLAIMS = {"sub": "alice", "iat": 1, "exp": 2, "jti": "d", "cmd": "00"}
HEADER = {"alg": "ES256", "kid": "k-1", "typ": COMMAND_TYP}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed_es256(header: dict[str, object], claims: object = CLAIMS) -> str:
    """A token over any header, signed with the ES256 key (PyJWT would refuse to write some)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    der = ES256.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _pyjws_accepts(token: str, key: SigningKey) -> bool:
    try:
        verified = PyJWS(algorithms=[key.algorithm]).decode_complete(
            token, key.public().key, algorithms=[key.algorithm]
        )
    except jwt.PyJWTError:
        return False
    header = verified["header"]
    return header.get("alg") == key.algorithm and header.get("typ") == COMMAND_TYP


def _ours_accepts(token: str, key: SigningKey) -> bool:
    try:
        verify(token, key.public())
    except BadToken:
        return False
    return True


def _part(token: str, index: int, change: Callable[[str], str]) -> str:
    parts = token.split(".")
    parts[index] = change(parts[index])
    return ".".join(parts)


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _stray_bits(part: str) -> str:
    """The same bytes with the unused low bits of the last character set (not canonical)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return part[:-1] + alphabet[alphabet.index(part[-1]) | 1]


GOOD = _signed_es256(HEADER)
TOKENS = {
    "good ES256": (GOOD, ES256),
    "good EdDSA": (sign(CLAIMS, EDDSA), EDDSA),
    "EdDSA token, ES256 key": (sign(CLAIMS, EDDSA), ES256),
    "ES256 token, EdDSA key": (GOOD, EDDSA),
    "padding on the header": (_part(GOOD, 0, lambda p: p + "=" * (-len(p) % 4)), ES256),
    "three = on a part": (_part(GOOD, 2, lambda p: p + "==="), ES256),
    "padding in a whole quantum": (_part(GOOD, 2, lambda p: p + "=="), ES256),
    "a padding character too many": (_part(GOOD, 2, lambda p: p + "="), ES256),
    "a character outside the alphabet": (_part(GOOD, 1, lambda p: p[:4] + "!" + p[5:]), ES256),
    "standard base64 alphabet": (_part(GOOD, 1, lambda p: "+" + p[1:]), ES256),
    "whitespace": (_part(GOOD, 1, lambda p: p[:4] + " " + p[4:]), ES256),
    "one character too many": (_part(GOOD, 2, lambda p: p + "A"), ES256),
    "stray low bits in the signature": (_part(GOOD, 2, _stray_bits), ES256),
    "stray low bits in the claims": (_part(GOOD, 1, _stray_bits), ES256),
    "signature a byte short": (_part(GOOD, 2, lambda p: _b64(_unb64(p)[:-1])), ES256),
    "kid not a string": (_signed_es256({**HEADER, "kid": 1}), ES256),
    "crit empty": (_signed_es256({**HEADER, "crit": []}), ES256),
    "crit not a list": (_signed_es256({**HEADER, "crit": "b64"}), ES256),
    "crit an unknown extension": (_signed_es256({**HEADER, "crit": ["exp"]}), ES256),
    "crit b64, b64 absent": (_signed_es256({**HEADER, "crit": ["b64"]}), ES256),
    "crit b64, b64 true": (_signed_es256({**HEADER, "crit": ["b64"], "b64": True}), ES256),
    "b64 false (detached)": (_signed_es256({**HEADER, "crit": ["b64"], "b64": False}), ES256),
    "no alg": (_signed_es256({"kid": "k-1", "typ": COMMAND_TYP}), ES256),
    "alg ES384": (_signed_es256({**HEADER, "alg": "ES384"}), ES256),
    "another typ": (_signed_es256({**HEADER, "typ": "JWT"}), ES256),
    "claims a list": (_signed_es256(HEADER, [1, 2]), ES256),
    "four parts": (GOOD + ".e30", ES256),
}  # fmt: skip


@pytest.mark.parametrize("name", TOKENS)
def test_our_check_accepts_exactly_what_pyjws_accepts(name: str) -> None:
    token, key = TOKENS[name]
    expected = _pyjws_accepts(token, key) and isinstance(
        json.loads(_unb64(token.split(".")[1])), dict
    )  # PyJWS does not read the claims; we refuse claims that are not an object

    assert _ours_accepts(token, key) is expected, name


def test_the_good_tokens_pass_and_give_their_claims() -> None:
    assert verify(GOOD, ES256.public()) == CLAIMS
    assert verify(sign(CLAIMS, EDDSA), EDDSA.public()) == {**CLAIMS, "iss": "idp"}
    accepted = [name for name, (token, key) in TOKENS.items() if _ours_accepts(token, key)]
    assert accepted == [
        "good ES256", "good EdDSA", "padding in a whole quantum", "crit b64, b64 true"
    ]  # fmt: skip
