"""The trust store: which issuers a deployment trusts, their keys, and what each may assert. Pure.

A trust file (JSON; docs/signing.md) names each issuer by its `iss`:

    {"issuers": {
        "https://login.example.com": {"jwks_uri": "https://login.example.com/jwks.json",
                                      "roles_claim": "groups", "prefix": "sso:"},
        "payments-gateway": {"jwks_file": "gateway.jwks.json", "subjects": ["svc:payments"]},
        "countersign-dev": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "…", "kid": "…"}],
                            "development": true}},
     "anchor_keys": [{"kty": "OKP", "crv": "Ed25519", "x": "…", "kid": "worker-…"}]}

- `keys` are inline public JWKs; `jwks_file` and `jwks_uri` are read by `loading` (I/O),
  which hands their keys to `TrustStore.with_keys`.
- `subjects`: the only principals the issuer may sign for (a person's own key); absent: any
  (an identity provider or a gateway).
- `roles_claim`: the claim whose strings are roles the issuer may assert; absent: roles come
  from the deployment's directory only.
- `prefix`: put before every principal of the issuer, so two issuers' `alice` stay apart.
- `development`: a local development issuer (`countersign dev`); workers on Kafka say so
  loudly when they trust one.
- `anchor_keys`: the workers' public keys that sign chain-head anchors (docs/anchors.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from engine.trust.jws import BadToken, VerifyKey
from engine.trust.principal import canonical_principal
from events.json import Json

__all__ = ["Issuer", "TrustError", "TrustStore", "parse_jwks"]

_ISSUER_FIELDS = frozenset(
    {"keys", "jwks_file", "jwks_uri", "subjects", "roles_claim", "prefix", "development"}
)


_URI_SCHEMES = ("https://", "http://127.0.0.1:", "http://localhost:")


class TrustError(ValueError):
    """A trust file or JWKS that cannot be used (it is configuration: fix it)."""


@dataclass(frozen=True, slots=True)
class Issuer:
    name: str
    keys: Mapping[str, VerifyKey] = field(default_factory=dict)
    subjects: frozenset[str] | None = None
    roles_claim: str | None = None
    prefix: str = ""
    development: bool = False
    jwks_file: str | None = None
    jwks_uri: str | None = None

    def principal(self, subject: str) -> str:
        return self.prefix + canonical_principal(subject)

    def may_sign_for(self, subject: str) -> bool:
        return self.subjects is None or canonical_principal(subject) in self.subjects


@dataclass(frozen=True, slots=True)
class TrustStore:
    issuers: Mapping[str, Issuer] = field(default_factory=dict)
    anchor_keys: Mapping[str, VerifyKey] = field(default_factory=dict)

    def key(self, issuer: str, kid: str) -> VerifyKey | None:
        found = self.issuers.get(issuer)
        return None if found is None else found.keys.get(kid)

    @property
    def development(self) -> tuple[str, ...]:
        return tuple(name for name, issuer in self.issuers.items() if issuer.development)

    def with_keys(self, issuer: str, keys: Sequence[VerifyKey]) -> TrustStore:
        """The store with `issuer`'s fetched keys (from its jwks file or URI) added."""
        found = self.issuers[issuer]
        merged = {**found.keys, **{k.kid: k for k in keys}}
        issuers = {**self.issuers, issuer: replace(found, keys=MappingProxyType(merged))}
        return replace(self, issuers=MappingProxyType(issuers))

    def merged(self, other: TrustStore) -> TrustStore:
        """Both stores' issuers (`other` wins for one name) and anchor keys."""
        return TrustStore(
            MappingProxyType({**self.issuers, **other.issuers}),
            MappingProxyType({**self.anchor_keys, **other.anchor_keys}),
        )

    @staticmethod
    def parse(data: Json) -> TrustStore:
        """A trust file's content; `TrustError` names what is wrong."""
        if not isinstance(data, dict):
            raise TrustError("a trust file is a JSON object with an `issuers` object")
        unknown = set(data) - {"issuers", "anchor_keys"}
        if unknown:
            raise TrustError(f"unknown trust file fields: {', '.join(sorted(unknown))}")
        raw = data.get("issuers", {})
        if not isinstance(raw, dict):
            raise TrustError("`issuers` is an object: issuer name → settings")
        issuers = {name: _issuer(name, settings) for name, settings in raw.items()}
        anchors = parse_jwks({"keys": data.get("anchor_keys", [])}, "anchor_keys")
        return TrustStore(MappingProxyType(issuers), MappingProxyType({k.kid: k for k in anchors}))


def parse_jwks(data: Any, where: str) -> list[VerifyKey]:
    """The keys of a JWKS document (`{"keys": [...]}`)."""
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list):
        raise TrustError(f"{where}: a JWKS is an object with a `keys` list")
    found = []
    for jwk in keys:
        if not isinstance(jwk, dict):
            raise TrustError(f"{where}: a key is a JWK object")
        try:
            found.append(VerifyKey.from_jwk(jwk))
        except BadToken as exc:
            raise TrustError(f"{where}: {exc}") from exc
    return found


def _issuer(name: str, settings: Json) -> Issuer:
    where = f"issuer {name!r}"
    if not name or not isinstance(settings, dict):
        raise TrustError(f"{where}: settings are an object")
    unknown = set(settings) - _ISSUER_FIELDS
    if unknown:
        raise TrustError(f"{where}: unknown fields {', '.join(sorted(unknown))}")
    keys = parse_jwks({"keys": settings.get("keys", [])}, where)
    subjects = settings.get("subjects")
    if subjects is not None and not (
        isinstance(subjects, list) and all(isinstance(s, str) for s in subjects)
    ):
        raise TrustError(f"{where}: subjects is a list of principals")
    text = {k: settings.get(k) for k in ("roles_claim", "prefix", "jwks_file", "jwks_uri")}
    for key, value in text.items():
        if value is not None and not isinstance(value, str):
            raise TrustError(f"{where}: {key} is a string")
    uri = text["jwks_uri"]
    if isinstance(uri, str) and not uri.startswith(_URI_SCHEMES):
        raise TrustError(f"{where}: jwks_uri must be https:// (http:// only on 127.0.0.1)")
    return Issuer(
        name=name,
        keys=MappingProxyType({k.kid: k for k in keys}),
        subjects=None
        if subjects is None
        else frozenset(canonical_principal(str(s)) for s in subjects),
        roles_claim=text["roles_claim"],  # type: ignore[arg-type]
        prefix=str(text["prefix"] or ""),
        development=settings.get("development") is True,
        jwks_file=text["jwks_file"],  # type: ignore[arg-type]
        jwks_uri=uri,  # type: ignore[arg-type]
    )
