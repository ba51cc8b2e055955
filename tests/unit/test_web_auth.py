"""Who is calling: OIDC bearer tokens against a JWKS (cached, rotated, never `none` or HMAC),
local users with scrypt hashes, sessions and CSRF tokens."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from countersign.web.config import OidcSettings
from countersign.web.oidc import AuthError, JwksCache, OidcVerifier
from countersign.web.sessions import Sessions
from countersign.web.throttle import LoginThrottle
from countersign.web.users import (
    Users,
    check_password,
    hash_password,
    read_users,
    with_user,
    write_users,
)

ISSUER = "https://login.example"
SETTINGS = OidcSettings(
    issuer=ISSUER,
    audience="countersign",
    roles_claim="groups",
    principal_claim="preferred_username",
    jwks_uri="https://login.example/k",
)


class Issuer:
    """An identity provider in memory: keys by kid, a JWKS document, and a fetch counter."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetched = 0
        self.down = False

    def rotate(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    async def fetch(self, url: str) -> bytes:
        assert url == SETTINGS.jwks_uri
        self.fetched += 1
        if self.down:
            raise AuthError("unreachable")
        keys = [{**json.loads(RSAAlgorithm.to_jwk(k.public_key())), "kid": kid, "alg": "RS256"}
                for kid, k in self.keys.items()]  # fmt: skip
        return json.dumps({"keys": keys}).encode()

    def token(self, kid: str, **claims: object) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": "countersign", "iat": now, "exp": now + 300, "sub": "u-1",
                "preferred_username": "Alice", "groups": ["support-lead"]}  # fmt: skip
        return jwt.encode({**body, **claims}, self.keys[kid], "RS256", headers={"kid": kid})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> Issuer:
    found = Issuer()
    found.rotate("k1")
    return found


def verifier(issuer: Issuer, clock: Clock | None = None) -> OidcVerifier:
    cache = JwksCache(SETTINGS, fetch=issuer.fetch, clock=clock or Clock())
    return OidcVerifier(SETTINGS, cache)


async def test_a_valid_token_names_the_principal_and_its_roles(issuer: Issuer) -> None:
    identity = await verifier(issuer).verify(issuer.token("k1"))
    assert identity.principal == "alice"  # canonical: case-folded
    assert identity.roles == ("support-lead",)


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"aud": "someone-else"}, "not valid here"),
        ({"iss": "https://evil.example"}, "not valid here"),
        ({"preferred_username": ""}, "no usable preferred_username"),
        ({"exp": None}, "not valid here"),
    ],
)
async def test_tokens_that_do_not_hold_are_refused(
    issuer: Issuer, claims: dict[str, object], why: str
) -> None:
    token = issuer.token("k1", **claims)
    with pytest.raises(AuthError, match=why):
        await verifier(issuer).verify(token)


async def test_none_hmac_and_foreign_keys_are_refused(issuer: Issuer) -> None:
    check = verifier(issuer)
    claims = jwt.decode(issuer.token("k1"), options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, "none", headers={"kid": "k1"})
    with pytest.raises(AuthError, match="not accepted"):
        await check.verify(unsigned)
    hmac = jwt.encode(
        claims, b"the public key's bytes, as a secret" * 2, "HS256", headers={"kid": "k1"}
    )
    with pytest.raises(AuthError, match="not accepted"):
        await check.verify(hmac)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, stranger, "RS256", headers={"kid": "k1"})
    with pytest.raises(AuthError, match="not valid here"):
        await check.verify(forged)
    other_curve = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), "ES256",
                             headers={"kid": "k1"})  # fmt: skip
    with pytest.raises(AuthError, match="cannot be checked"):
        await check.verify(other_curve)
    with pytest.raises(AuthError, match="too long"):
        await check.verify("a" * 20_000)
    with pytest.raises(AuthError, match="not a JWT"):
        await check.verify("not.a.jwt")
    assert ECAlgorithm  # the EC key type above is the library's own


async def test_keys_are_cached_rotated_in_and_refetched_at_most_so_often(issuer: Issuer) -> None:
    clock = Clock()
    check = verifier(issuer, clock)
    for _ in range(5):
        await check.verify(issuer.token("k1"))
    assert issuer.fetched == 1  # cached
    issuer.rotate("k2")
    with pytest.raises(AuthError, match="does not publish"):  # not within 30 s of a fetch
        await check.verify(issuer.token("k2"))
    assert issuer.fetched == 1
    clock.now += 31  # then a token naming the new key fetches the keys at once
    await check.verify(issuer.token("k2"))
    assert issuer.fetched == 2
    for n in range(20):  # made-up kids cannot make it hammer the issuer
        with pytest.raises(AuthError, match="does not publish"):
            await check.verify(jwt.encode({"iss": ISSUER}, issuer.keys["k1"], "RS256",
                                          headers={"kid": f"bogus-{n}"}))  # fmt: skip
    assert issuer.fetched == 2
    issuer.down = True
    clock.now += 400  # past the time to live: refetch fails, the known keys stay
    await check.verify(issuer.token("k2"))
    assert issuer.fetched == 3


def test_passwords_are_hashed_and_checked_in_constant_form(tmp_path: Path) -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$16384$8$1$")
    assert check_password("correct horse", stored)
    assert not check_password("wrong", stored)
    assert not check_password("correct horse", stored.replace("16384", "1048576"))
    assert not check_password("x", "garbage")
    path = tmp_path / "users.json"
    write_users(path, with_user(Users(), "Alice", "correct horse", ["support-lead"]))
    assert path.stat().st_mode & 0o777 == 0o600
    assert "correct horse" not in path.read_text()
    users = read_users(path)
    assert users.login("ALICE", "correct horse") is not None
    assert users.login("alice", "nope") is None
    assert users.login("nobody", "correct horse") is None


def test_sessions_expire_are_bounded_and_csrf_tokens_are_bound() -> None:
    clock = Clock()
    sessions = Sessions(b"k" * 32, ttl_s=60, max_sessions=2, clock=clock)
    first = sessions.open("alice", ())
    assert sessions.get(first.id) == first
    token = sessions.csrf_token(f"session:{first.id}")
    assert sessions.csrf_ok(f"session:{first.id}", token)
    assert not sessions.csrf_ok("session:other", token)
    assert not sessions.csrf_ok(f"session:{first.id}", None)
    sessions.open("b", ())
    sessions.open("c", ())
    assert sessions.get(first.id) is None  # the oldest went when a third came
    late = sessions.open("d", ())
    clock.now += 61
    assert sessions.get(late.id) is None
    assert sessions.get("x" * 500) is None


def test_wrong_passwords_slow_one_name_and_many_names_cannot_fill_the_memory() -> None:
    now = [0.0]
    throttle = LoginThrottle(limit=3, window_s=60, max_names=100, clock=lambda: now[0])
    for _ in range(3):
        assert not throttle.throttled("alice")
        throttle.failed("alice")
    assert throttle.throttled("alice")
    assert not throttle.throttled("erin")
    now[0] = 61.0
    assert not throttle.throttled("alice")  # the window passed
    for n in range(10_000):
        throttle.failed(f"guess-{n}")
    assert len(throttle) == 100
    for _ in range(3):
        throttle.failed("alice")
    assert throttle.throttled("alice")  # the most recent names are kept


@pytest.mark.parametrize(
    "document",
    [
        b'{"keys": 5}',
        b"[" * 5_000 + b"]" * 5_000,
        b'{"keys": [{"kid": "k1", "kty": "RSA", "n": NaN}]}',
        b"\xff\xfe not utf-8",
    ],
)
async def test_a_hostile_jwks_keeps_the_known_keys_and_answers_every_token(
    issuer: Issuer, document: bytes
) -> None:
    clock = Clock()
    check = verifier(issuer, clock)
    await check.verify(issuer.token("k1"))  # k1 known

    async def hostile(url: str) -> bytes:
        issuer.fetched += 1
        return document

    check.keys._fetch = hostile  # the provider now serves junk
    clock.now += 400  # past the time to live: the junk is fetched and refused
    identity = await check.verify(issuer.token("k1"))
    assert identity.principal == "alice"
    assert issuer.fetched == 2  # the junk was fetched, and refused


async def test_a_jwks_whose_keys_are_all_unusable_leaves_no_key_to_trust(issuer: Issuer) -> None:
    clock = Clock()
    check = verifier(issuer, clock)
    await check.verify(issuer.token("k1"))

    async def unusable(url: str) -> bytes:
        return b'{"keys": [7, "x", {"kid": 3}, {"kid": "k1", "kty": "none"}]}'

    check.keys._fetch = unusable  # a well-formed JWKS: the provider withdrew every key
    clock.now += 400
    with pytest.raises(AuthError, match="does not publish"):
        await check.verify(issuer.token("k1"))
