"""OIDC bearer tokens, verified against the issuer's JWKS (I/O: fetches the keys, httpx).

    verifier = OidcVerifier(settings.oidc)
    identity = await verifier.verify(token)      # Identity(principal, roles) or AuthError

Keys are cached: fetched at first use, again when `ttl_s` has passed, and at once when a
token names a key id not seen yet (a key rotated in), at most once per `refetch_after_s`, so
a flood of made-up key ids cannot make the server hammer the identity provider. A fetch that
fails keeps the keys known so far. Only asymmetric algorithms are accepted, each for its own
key type: never `none`, never an HMAC (whose "key" would be the public JWKS). `iss`, `aud`,
`exp` and `iat` are required and checked (60 s of leeway); the principal comes from the
configured claim, in canonical form; roles from the roles claim when one is configured.
The JWKS comes over https (http only on a loopback address, for tests and development),
read by `engine.http_fetch` (bounded) and the strict JSON reader.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
import structlog

from countersign.web.config import OidcSettings
from countersign.web.users import canonical_principal
from engine.http_fetch import MAX_DOCUMENT_BYTES, fetch_document
from events.json import loads

log = structlog.get_logger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
MAX_TOKEN_CHARS = 16_384
MAX_JWKS_BYTES = MAX_DOCUMENT_BYTES
MAX_ROLES = 100
LEEWAY_S = 60

Fetch = Callable[[str], Awaitable[bytes]]


class AuthError(Exception):
    """The caller is not authenticated (the message says why, without echoing secrets)."""


@dataclass(frozen=True, slots=True)
class Identity:
    principal: str
    roles: tuple[str, ...]
    issuer: str


class JwksCache:
    def __init__(
        self,
        settings: OidcSettings,
        *,
        fetch: Fetch = fetch_document,
        ttl_s: float = 300.0,
        refetch_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._refetch_after_s = refetch_after_s
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str) -> jwt.PyJWK | None:
        if self._needs_refresh(kid):
            async with self._lock:  # one fetch for a crowd of requests naming the new key
                if self._needs_refresh(kid):
                    await self._refresh()
        return self._keys.get(kid)

    def _needs_refresh(self, kid: str) -> bool:
        if self._fetched_at is None:
            return True
        age = self._clock() - self._fetched_at
        return age >= self._ttl_s or (kid not in self._keys and age >= self._refetch_after_s)

    async def _refresh(self) -> None:
        self._fetched_at = self._clock()
        self.fetches += 1
        try:
            uri = self._settings.jwks_uri or await self._discover()
            document = loads((await self._fetch(uri)).decode("utf-8"), max_chars=MAX_JWKS_BYTES)
            keys: dict[str, jwt.PyJWK] = {}
            listed = document.get("keys") if isinstance(document, dict) else None
            if not isinstance(listed, list):
                raise ValueError(f"{uri}: not a JWKS (no keys list)")  # known keys are kept
            for entry in listed:
                kid = entry.get("kid") if isinstance(entry, dict) else None
                if isinstance(entry, dict) and isinstance(kid, str):
                    try:
                        keys[kid] = jwt.PyJWK(entry)
                    except jwt.PyJWTError:
                        continue  # a key type this library cannot use: tokens naming it fail
            self._keys = keys
        except (ValueError, AuthError) as exc:  # FetchError, JsonRefused: a ValueError
            log.error("oidc_jwks_unavailable", issuer=self._settings.issuer, error=str(exc)[:300])

    async def _discover(self) -> str:
        url = self._settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = loads((await self._fetch(url)).decode("utf-8"), max_chars=MAX_JWKS_BYTES)
        uri = document.get("jwks_uri") if isinstance(document, dict) else None
        if not isinstance(uri, str):
            raise AuthError(f"{url} names no jwks_uri")
        return uri


class OidcVerifier:
    def __init__(self, settings: OidcSettings, keys: JwksCache | None = None) -> None:
        self._settings = settings
        self.keys = keys or JwksCache(settings)

    async def verify(self, token: str) -> Identity:
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthError("the token is too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("not a JWT") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise AuthError(f"algorithm {str(alg)[:20]!r} is not accepted")
        if not isinstance(kid, str):
            raise AuthError("the token names no key (kid)")
        key = await self.keys.key(kid)
        if key is None:
            raise AuthError("the token is signed with a key the issuer does not publish")
        if key.key_type != KEY_TYPES[alg[:2]]:
            raise AuthError(f"a {alg} token cannot be checked with a {key.key_type} key")
        claims = self._decode(token, key, alg)
        return self._identity(claims)

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("the token has expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"the token is not valid here: {str(exc)[:200]}") from exc
        return claims

    def _identity(self, claims: dict[str, Any]) -> Identity:
        name = claims.get(self._settings.principal_claim)
        if not isinstance(name, str) or not name.strip() or len(name) > 256:
            raise AuthError(f"the token has no usable {self._settings.principal_claim} claim")
        roles: tuple[str, ...] = ()
        if self._settings.roles_claim:
            found = claims.get(self._settings.roles_claim, [])
            if isinstance(found, list):
                roles = tuple(
                    canonical_principal(r.removeprefix("role:"))
                    for r in found[:MAX_ROLES]
                    if isinstance(r, str) and len(r) <= 200
                )
        return Identity(canonical_principal(name), roles, self._settings.issuer)
