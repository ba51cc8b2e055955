"""Local keys (I/O): signing keys under `COUNTERSIGN_HOME/keys/`, and the home's trust file.

- `create_key` makes an Ed25519 (or P-256) key pair: the private JWK goes to
  `keys/<kid>.jwk` (mode 0600, the folder 0700) and its public half into the home's trust
  file (`trust.json`) under its issuer, so workers using this home trust it.
- `ensure_dev_issuer` is what `countersign demo` and `dev` (and the CLI's commands, when no
  key is configured) use: the local development issuer `countersign-dev`, made once, marked
  `development` in the trust file, so a worker on Kafka that trusts it says so loudly.
- `signing_key` picks the key a command is signed with: `COUNTERSIGN_SIGNING_KEY` (a private
  JWK, inline or a file path) first, then a home key made for that very subject, then the
  home's default key.
- `worker_key` is the key workers sign anchors with (`COUNTERSIGN_WORKER_KEY`, else one made
  under `keys/worker/`); its public half is listed in the trust file's `anchor_keys`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigurationError
from engine.file_lock import file_lock
from engine.trust.jws import BadToken, SigningKey, generate_key
from engine.trust.loading import read_json
from engine.trust.principal import canonical_principal
from events.json import JsonObject

__all__ = [
    "DEV_ISSUER",
    "LocalKey",
    "create_key",
    "ensure_dev_issuer",
    "list_keys",
    "signing_key",
    "trust_path",
    "worker_key",
]

DEV_ISSUER = "countersign-dev"


@dataclass(frozen=True, slots=True)
class LocalKey:
    key: SigningKey
    path: Path
    subjects: tuple[str, ...]
    development: bool
    default: bool


def trust_path(home: Path) -> Path:
    return home / "trust.json"


def create_key(
    home: Path,
    *,
    issuer: str = "local",
    subject: str | None = None,
    development: bool = False,
    algorithm: str = "ES256",
    default: bool | None = None,
) -> LocalKey:
    """A new key pair in `home`, trusted by the home's trust file. It becomes the default
    signing key when `default` is true, or when there is none yet and it has no subject."""
    with _home_locked(home):
        return _create_key(home, issuer, subject, development, algorithm, default)


def _create_key(
    home: Path,
    issuer: str,
    subject: str | None,
    development: bool,
    algorithm: str,
    default: bool | None,
) -> LocalKey:
    folder = _keys_dir(home)
    if subject and issuer == "local":
        # A person's own key is an issuer of its own: its subject restriction binds it alone.
        issuer = f"local:{canonical_principal(subject)}"
    kid = f"{''.join(c if c.isalnum() else '_' for c in issuer)[:40]}-{secrets.token_hex(6)}"
    try:
        key = generate_key(kid, issuer, algorithm)
    except BadToken as exc:
        raise ConfigurationError(str(exc)) from exc
    path = folder / f"{kid}.jwk"
    private = {**key.private_jwk(), **({"sub": canonical_principal(subject)} if subject else {})}
    _write_private(path, private)
    settings: JsonObject = {}
    if subject:
        settings["subjects"] = [canonical_principal(subject)]
    if development:
        settings["development"] = True
    _trust_issuer(home, issuer, key.public().jwk, settings)
    becomes_default = (
        default if default is not None else (subject is None and not (folder / "default").exists())
    )
    if becomes_default:
        (folder / "default").write_text(kid + "\n", encoding="utf-8")
    subjects = (canonical_principal(subject),) if subject else ()
    return LocalKey(key, path, subjects, development, becomes_default)


def ensure_dev_issuer(home: Path) -> SigningKey:
    """The home's default signing key, made as the development issuer if there is none."""
    found = _default(home)
    if found is not None:
        return found.key
    with _home_locked(home):  # another process may be making it right now: look again
        found = _default(home)
        if found is not None:
            return found.key
        return _create_key(home, DEV_ISSUER, None, True, "ES256", True).key


def list_keys(home: Path) -> list[LocalKey]:
    folder = home / "keys"
    if not folder.is_dir():
        return []
    default = _default_kid(folder)
    found = []
    for path in sorted(folder.glob("*.jwk")):
        found.append(_load(path, default))
    return found


def signing_key(
    home: Path, subject: str | None, env: Mapping[str, str] | None = None
) -> SigningKey | None:
    """The key to sign `subject`'s command with (see the module doc), or None."""
    env = os.environ if env is None else env
    configured = env.get("COUNTERSIGN_SIGNING_KEY")
    if configured:
        return _from_setting(configured, "COUNTERSIGN_SIGNING_KEY")
    if subject:
        wanted = canonical_principal(subject)
        for local in list_keys(home):
            if wanted in local.subjects:
                return local.key
    found = _default(home)
    return found.key if found is not None else None


def worker_key(home: Path, env: Mapping[str, str] | None = None) -> SigningKey:
    """The key this worker signs anchors with (made and trusted in the home if needed)."""
    env = os.environ if env is None else env
    configured = env.get("COUNTERSIGN_WORKER_KEY")
    if configured:
        return _from_setting(configured, "COUNTERSIGN_WORKER_KEY")
    folder = _keys_dir(home) / "worker"
    folder.mkdir(mode=0o700, exist_ok=True)
    with _home_locked(home):  # two workers starting at once make and trust one key
        existing = sorted(folder.glob("*.jwk"))
        if existing:
            return _load(existing[0], None).key
        return _new_worker_key(home, folder)


def _new_worker_key(home: Path, folder: Path) -> SigningKey:
    kid = f"worker-{secrets.token_hex(6)}"
    key = generate_key(kid, "countersign-worker")
    _write_private(folder / f"{kid}.jwk", key.private_jwk())
    trust = _read_trust(home)
    anchors = trust.setdefault("anchor_keys", [])
    assert isinstance(anchors, list)
    anchors.append(key.public().jwk)
    _write_trust(home, trust)
    return key


def _from_setting(value: str, name: str) -> SigningKey:
    text = value.strip()
    data = json.loads(text) if text.startswith("{") else read_json(Path(text), name)
    if not isinstance(data, dict):
        raise ConfigurationError(f"{name}: a private JWK object")
    try:
        return SigningKey.from_jwk(data)
    except BadToken as exc:
        raise ConfigurationError(f"{name}: {exc}") from exc


def _default(home: Path) -> LocalKey | None:
    folder = home / "keys"
    kid = _default_kid(folder)
    if kid is None or not (folder / f"{kid}.jwk").exists():
        return None
    return _load(folder / f"{kid}.jwk", kid)


def _default_kid(folder: Path) -> str | None:
    try:
        return (folder / "default").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _load(path: Path, default: str | None) -> LocalKey:
    data = read_json(path, "key file")
    if not isinstance(data, dict):
        raise ConfigurationError(f"key file {path}: a private JWK object")
    try:
        key = SigningKey.from_jwk(data)
    except BadToken as exc:
        raise ConfigurationError(f"key file {path}: {exc}") from exc
    sub = data.get("sub")
    subjects = (str(sub),) if isinstance(sub, str) else ()
    return LocalKey(key, path, subjects, key.issuer == DEV_ISSUER, key.kid == default)


def _keys_dir(home: Path) -> Path:
    folder = home / "keys"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _write_private(path: Path, jwk: JsonObject) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(jwk, handle)


def _read_trust(home: Path) -> JsonObject:
    path = trust_path(home)
    if not path.exists():
        return {"issuers": {}}
    data = read_json(path, "trust file")
    if not isinstance(data, dict):
        raise ConfigurationError(f"trust file {path}: a JSON object")
    return data


def _trust_issuer(home: Path, issuer: str, jwk: JsonObject, settings: JsonObject) -> None:
    trust = _read_trust(home)
    issuers = trust.setdefault("issuers", {})
    assert isinstance(issuers, dict)
    entry = issuers.setdefault(issuer, {})
    assert isinstance(entry, dict)
    keys = entry.setdefault("keys", [])
    assert isinstance(keys, list)
    keys.append(jwk)
    for name, value in settings.items():
        if name == "subjects" and isinstance(entry.get("subjects"), list):
            merged = {*entry["subjects"], *value}  # type: ignore[misc]
            entry["subjects"] = [str(s) for s in sorted(merged)]
        else:
            entry[name] = value
    _write_trust(home, trust)


def _write_trust(home: Path, trust: JsonObject) -> None:
    path = trust_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=".trust-", dir=path.parent)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(trust, indent=2) + "\n")
    os.replace(temporary, path)


@contextlib.contextmanager
def _home_locked(home: Path) -> Iterator[None]:
    """Serialise changes to a home's keys and trust file across processes: a worker, a
    projector and the CLI started at once on a new home each read, change and write the
    trust file, and without this one's key could be lost from it (and its commands or
    anchors refused)."""
    home.mkdir(parents=True, exist_ok=True)
    with file_lock(home / ".keys.lock"):
        yield
