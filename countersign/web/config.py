"""The web server's settings: one frozen dataclass read from `COUNTERSIGN_WEB_*` / `_OIDC_*`.

- `COUNTERSIGN_WEB_HOST`, `COUNTERSIGN_WEB_PORT`: where `countersign serve` listens
  (127.0.0.1:8766 by default: a deployment puts a TLS proxy in front).
- `COUNTERSIGN_WEB_URL`: the address people open (links in notifications; the Origin a
  state-changing request must come from). Default: http://HOST:PORT.
- `COUNTERSIGN_WEB_USERS`: the local login's users file (hashed passwords and roles;
  `countersign web-users add`). Default `COUNTERSIGN_HOME/web-users.json`; the local login is
  offered only when that file exists.
- `COUNTERSIGN_WEB_SECRET`: the key sessions' CSRF tokens are derived with (hex, 32 bytes or
  more). Default: a new one at every start (sessions then do not survive a restart).
- `COUNTERSIGN_DIRECTORY`: the deployment's directory file (`{"principals": {name: [roles]}}`),
  the same file the workers read.
- `COUNTERSIGN_OIDC_ISSUER`, `COUNTERSIGN_OIDC_AUDIENCE`: bearer tokens are accepted from this
  issuer for this audience; `COUNTERSIGN_OIDC_JWKS_URI` (default: the issuer's discovery
  document), `COUNTERSIGN_OIDC_PRINCIPAL_CLAIM` (default `sub`), `COUNTERSIGN_OIDC_ROLES_CLAIM`
  (a claim holding a list of role names; none: roles come from the directory only).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

DEFAULT_PORT = 8766


@dataclass(frozen=True, kw_only=True)
class OidcSettings:
    issuer: str
    audience: str
    jwks_uri: str | None = None
    principal_claim: str = "sub"
    roles_claim: str | None = None


@dataclass(frozen=True, kw_only=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    public_url: str | None = None
    users_file: Path | None = None
    secret: bytes | None = None
    directory_file: Path | None = None
    oidc: OidcSettings | None = None
    session_ttl: timedelta = timedelta(hours=8)
    due_soon: timedelta = timedelta(hours=1)
    max_wait_s: float = 60.0
    """The longest a request may wait for an outcome (long-poll)."""

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @classmethod
    def from_env(cls, home: Path, env: Mapping[str, str] | None = None) -> WebSettings:
        env = os.environ if env is None else env
        secret = env.get("COUNTERSIGN_WEB_SECRET")
        users = env.get("COUNTERSIGN_WEB_USERS")
        directory = env.get("COUNTERSIGN_DIRECTORY")
        issuer = env.get("COUNTERSIGN_OIDC_ISSUER")
        oidc = None
        if issuer:
            audience = env.get("COUNTERSIGN_OIDC_AUDIENCE")
            if not audience:
                raise ValueError("COUNTERSIGN_OIDC_ISSUER needs COUNTERSIGN_OIDC_AUDIENCE too")
            oidc = OidcSettings(
                issuer=issuer,
                audience=audience,
                jwks_uri=env.get("COUNTERSIGN_OIDC_JWKS_URI") or None,
                principal_claim=env.get("COUNTERSIGN_OIDC_PRINCIPAL_CLAIM") or "sub",
                roles_claim=env.get("COUNTERSIGN_OIDC_ROLES_CLAIM") or None,
            )
        base = cls()
        return replace(
            base,
            host=env.get("COUNTERSIGN_WEB_HOST", base.host),
            port=int(env.get("COUNTERSIGN_WEB_PORT", base.port)),
            public_url=env.get("COUNTERSIGN_WEB_URL") or None,
            users_file=Path(users) if users else home / "web-users.json",
            secret=_secret(secret) if secret else None,
            directory_file=Path(directory) if directory else None,
            oidc=oidc,
        )


def _secret(text: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError as exc:
        raise ValueError("COUNTERSIGN_WEB_SECRET must be hex") from exc
    if len(value) < 32:
        raise ValueError("COUNTERSIGN_WEB_SECRET must hold at least 32 bytes (64 hex digits)")
    return value
