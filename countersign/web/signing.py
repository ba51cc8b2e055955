"""The one place the web server's commands get their proof (the signing adapter).

The server decides on behalf of the person it authenticated: it writes that principal into
the command (`decided_by`) itself, never a value from the request, and signs the command with
its own key, so a browser holds no key and cannot claim to be anyone else. The proof format
is the trust work's (issue 11: a compact JWS in the `countersign-proof` header, over the
command's exact bytes, `sub` the principal, `jti` the decision id, with the roles the login
proved under `roles` — they count if the trust file gives this server's issuer a
`roles_claim`).

`ServerSigner.headers` is all the rest of the server calls. Without a signing module in this
build (the trust branch not merged), or without a key, commands go out unsigned: the embedded
log accepts them (one machine), a worker that requires proofs refuses them with a reason the
page shows. `status` says which, for the server's first log line and `/health`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from typing import Any

import structlog

from countersign.settings import Settings
from engine.log.port import EventLog, Headers, Outgoing, Topics
from events.codec import Codec
from events.commands import Command

log = structlog.get_logger(__name__)


class ServerSigner:
    """Signs with `key` (a trust `SigningKey`), or leaves commands unsigned when None."""

    def __init__(self, key: Any | None) -> None:
        self._key = key
        self._signing = _signing_module() if key is not None else None

    @property
    def status(self) -> str:
        if self._key is None:
            return "unsigned (no signing key for this server)"
        return f"signed as {self._key.issuer} (key {self._key.kid})"

    def headers(self, value: bytes, command: Command, roles: Sequence[str]) -> Headers:
        if self._key is None or self._signing is None:
            return ()
        proof: tuple[str, bytes] = self._signing.proof_header(
            value, command, self._key, now_s=int(time.time()), roles=tuple(roles)
        )
        return (proof,)


def server_signer(settings: Settings) -> ServerSigner:
    """The server's key: `COUNTERSIGN_SIGNING_KEY`, else the home's default key (the
    development issuer under `countersign dev`), when this build can sign at all."""
    keys = _optional("engine.trust.keys")
    if keys is None:
        log.warning("web_commands_unsigned", reason="this build has no command signing")
        return ServerSigner(None)
    key = keys.signing_key(settings.home, None)
    if key is None:
        log.warning("web_commands_unsigned", reason="no signing key: COUNTERSIGN_SIGNING_KEY")
    return ServerSigner(key)


def development_signer(settings: Settings) -> ServerSigner:
    """`countersign dev`: the home's development issuer, made on first use."""
    keys = _optional("engine.trust.keys")
    if keys is None:
        return ServerSigner(None)
    return ServerSigner(keys.ensure_dev_issuer(settings.home))


class SignedPublisher:
    """Publishes commands with the schema header and this server's proof."""

    def __init__(
        self, event_log: EventLog, topics: Topics, codec: Codec, signer: ServerSigner
    ) -> None:
        self._log = event_log
        self._topic = topics.commands
        self._codec = codec
        self.signer = signer

    async def publish(self, command: Command, roles: Sequence[str]) -> None:
        value = self._codec.encode(command)
        headers = (self._codec.schema_header(value), *self.signer.headers(value, command, roles))
        await self._log.publish([Outgoing(self._topic, command.run_id, value, headers=headers)])


def _signing_module() -> Any:
    return _optional("engine.trust.signing")


def _optional(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        return None
