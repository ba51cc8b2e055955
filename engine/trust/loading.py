"""Loading trust (I/O): the trust file, issuers' JWKS files and URLs, cached and refreshed.

`TrustLoader.load()` reads the trust file and every issuer's `jwks_file`, and fetches every
`jwks_uri` (httpx). A worker then calls `Trust.prepare(batches)` before each batch: when a
proof names an issuer or key id the store lacks (a key rotated in), the loader reads the
trust file again if it changed and refetches that issuer's JWKS — at most once per
`refetch_after_s` per issuer, so a flood of forged key ids cannot make it hammer the
identity provider — and JWKS URLs are refetched anyway once `ttl_s` has passed. A fetch
that fails keeps the keys known so far (logged); the pure gate then refuses what it cannot
verify, naming the issuer or key.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from engine.errors import ConfigurationError
from engine.http_fetch import fetch_document
from engine.log.port import Record
from engine.trust.access import Access
from engine.trust.gate import PROOF_HEADER, CommandGate
from engine.trust.jws import BadToken, SigningKey, read_header
from engine.trust.store import TrustError, TrustStore, parse_jwks
from events.json import Json, loads

__all__ = ["Trust", "TrustLoader", "read_json"]

log = structlog.get_logger(__name__)

MAX_FILE_BYTES = 1_048_576


def read_json(path: Path, what: str) -> Json:
    """A JSON file, size-capped; `ConfigurationError` names the file and the problem."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"{what} {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise ConfigurationError(f"{what} {path}: over {MAX_FILE_BYTES} bytes")
    try:  # the strict reader: depth, numbers and Unicode bounded as for any message
        return loads(data.decode("utf-8"), max_chars=MAX_FILE_BYTES)
    except ValueError as exc:  # UnicodeDecodeError, JsonRefused
        raise ConfigurationError(f"{what} {path}: not JSON: {exc}") from exc


class TrustLoader:
    """The trust store from a trust file (optional) plus extra stores given in code."""

    def __init__(
        self,
        path: Path | None,
        *,
        extra: TrustStore | None = None,
        ttl_s: float = 300.0,
        refetch_after_s: float = 30.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.path = path
        self._extra = extra or TrustStore()
        self._ttl_s = ttl_s
        self._refetch_after_s = refetch_after_s
        self._timeout_s = timeout_s
        self._mtime: float | None = None
        self._fetched: dict[str, float] = {}
        self.store = self._extra

    async def load(self) -> TrustStore:
        self.store = self._read_file().merged(self._extra)
        for name in self.store.issuers:
            self.store = await self._fetch(self.store, name)
        return self.store

    async def refresh(self, wanted: Iterable[tuple[str, str]]) -> TrustStore:
        """Reload what the wanted (issuer, kid) pairs need, within the rate limits."""
        now = time.monotonic()
        missing = [(i, k) for i, k in wanted if self.store.key(i, k) is None]
        if missing and self._file_changed():
            return await self.load()
        for issuer in {i for i, _ in missing if i in self.store.issuers}:
            if now - self._fetched.get(issuer, -1e9) >= self._refetch_after_s:
                self.store = await self._fetch(self.store, issuer)
        for name, found in list(self.store.issuers.items()):
            stale = now - self._fetched.get(name, now) >= self._ttl_s
            if found.jwks_uri and stale:
                self.store = await self._fetch(self.store, name)
        return self.store

    def _file_changed(self) -> bool:
        if self.path is None:
            return False
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return self._mtime is not None
        return mtime != self._mtime

    def _read_file(self) -> TrustStore:
        if self.path is None or not self.path.exists():
            self._mtime = None
            return TrustStore()
        self._mtime = self.path.stat().st_mtime
        try:
            return TrustStore.parse(read_json(self.path, "trust file"))
        except TrustError as exc:
            raise ConfigurationError(f"trust file {self.path}: {exc}") from exc

    async def _fetch(self, store: TrustStore, name: str) -> TrustStore:
        issuer = store.issuers[name]
        self._fetched[name] = time.monotonic()
        try:
            if issuer.jwks_file:
                base = self.path.parent if self.path is not None else Path.cwd()
                data = read_json(base / issuer.jwks_file, f"issuer {name} jwks_file")
                return store.with_keys(name, parse_jwks(data, f"issuer {name}"))
            if issuer.jwks_uri:
                body = await fetch_document(issuer.jwks_uri, timeout_s=self._timeout_s)
                data = loads(body.decode("utf-8"), max_chars=MAX_FILE_BYTES)
                return store.with_keys(name, parse_jwks(data, f"issuer {name}"))
        except (ValueError, ConfigurationError) as exc:  # FetchError, JsonRefused: a ValueError
            log.error("jwks_unavailable", issuer=name, error=str(exc))
        return store


@dataclass(frozen=True)
class Trust:
    """What a worker trusts: the gate (pure) and how to keep its store fresh (I/O)."""

    gate: CommandGate
    access: Access
    loader: TrustLoader | None = None
    anchor_key: SigningKey | None = None
    """The key this worker signs its chain-head anchors with (None: no anchors)."""

    async def prepare(self, batches: Iterable[Sequence[Record]]) -> CommandGate:
        """The gate to check these records with: the store refreshed for the issuers and
        keys their proofs name (unknown ones are refused by the gate, not here)."""
        if self.loader is None:
            return self.gate
        wanted = set()
        for batch in batches:
            for record in batch:
                proof = record.header(PROOF_HEADER)
                if proof is None:
                    continue
                try:
                    wanted.add(read_header(proof.decode("ascii")))
                except (UnicodeDecodeError, BadToken):
                    continue  # the gate refuses it with the reason
        store = await self.loader.refresh(wanted)
        return self.gate if store is self.gate.store else replace(self.gate, store=store)
