"""What a process trusts and signs with, from the settings and the environment.

- `COUNTERSIGN_TRUST`: the trust file (default: `COUNTERSIGN_HOME/trust.json`, which
  `countersign keys create` and the development issuer write to).
- `COUNTERSIGN_DIRECTORY`: the deployment's directory file (roles, who may start, cancel,
  lift; `engine.trust.access`).
- `COUNTERSIGN_UNSIGNED`: `refuse` or `allow`. Default: refuse on Kafka; allow on the
  embedded log (one machine: whoever can write its commands can write its runs too), with
  a warning. `countersign worker --allow-unsigned` is the explicit development flag.
- `COUNTERSIGN_SIGNING_KEY`: the private JWK commands are signed with (inline or a path);
  else the home's key for the subject, else its default key, else the development issuer,
  made on first use (and said so on stderr).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import structlog

from countersign.settings import Settings
from engine.errors import ConfigurationError
from engine.trust import keys
from engine.trust.access import Access
from engine.trust.gate import CommandGate
from engine.trust.jws import SigningKey
from engine.trust.loading import Trust, TrustLoader, read_json
from engine.trust.store import TrustError
from projections.verify import AnchorCheck

__all__ = ["anchor_check", "command_key", "read_access", "worker_trust"]

log = structlog.get_logger(__name__)


def trust_file(settings: Settings, env: Mapping[str, str]) -> Path:
    configured = env.get("COUNTERSIGN_TRUST")
    return Path(configured) if configured else keys.trust_path(settings.home)


def access(env: Mapping[str, str]) -> Access:
    path = env.get("COUNTERSIGN_DIRECTORY")
    return read_access(Path(path)) if path else Access()


def read_access(path: Path) -> Access:
    """The deployment's directory file, read and checked (`ConfigurationError` says why)."""
    try:
        return Access.parse(read_json(path, "directory file"))
    except TrustError as exc:
        raise ConfigurationError(f"directory file {path}: {exc}") from exc


def require_signed(backend: str, allow_unsigned: bool, env: Mapping[str, str]) -> bool:
    if allow_unsigned:
        return False
    setting = env.get("COUNTERSIGN_UNSIGNED", "")
    if setting not in ("", "refuse", "allow"):
        raise ConfigurationError(f"COUNTERSIGN_UNSIGNED={setting!r}: use refuse or allow")
    if setting:
        return setting == "refuse"
    return backend == "kafka"


async def worker_trust(
    settings: Settings,
    backend: str,
    *,
    allow_unsigned: bool = False,
    development: bool = False,
    env: Mapping[str, str] | None = None,
) -> Trust:
    """The trust of a worker: its gate over the trust file's issuers (and the development
    issuer, for `countersign dev` and `demo`), and the deployment's access rules."""
    env = os.environ if env is None else env
    if development:
        keys.ensure_dev_issuer(settings.home)
    anchor_key = keys.worker_key(settings.home, env)  # before loading: the home trusts it
    path = trust_file(settings, env)
    extra = None
    if development and path != keys.trust_path(settings.home):
        extra = await TrustLoader(keys.trust_path(settings.home)).load()
    loader = TrustLoader(path, extra=extra)
    store = await loader.load()
    gate = CommandGate(store, require_signed=require_signed(backend, allow_unsigned, env))
    if allow_unsigned:
        log.warning(
            "development_flag_allow_unsigned",
            remedy="never in production: unsigned commands act as whoever they name",
        )
    if store.development and backend == "kafka":
        log.warning("worker_trusts_development_issuer", issuers=list(store.development))
    return Trust(gate, access(env), loader, anchor_key)


async def anchor_check(
    settings: Settings, topic: str, env: Mapping[str, str] | None = None
) -> AnchorCheck | None:
    """The anchors `verify` checks against: the trust file's worker keys (None: none)."""
    env = os.environ if env is None else env
    store = await TrustLoader(trust_file(settings, env)).load()
    if not store.anchor_keys:
        return None
    return AnchorCheck(topic=topic, keys=store.anchor_keys)


def command_key(settings: Settings, subject: str | None) -> tuple[SigningKey, bool]:
    """The key the CLI signs a command with (see the module doc), and whether it was made
    just now (the development issuer, on first use)."""
    found = keys.signing_key(settings.home, subject)
    if found is not None:
        return found, False
    return keys.ensure_dev_issuer(settings.home), True
