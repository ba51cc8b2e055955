"""The one place the web server's commands get their proof (the signing adapter).

The server decides on behalf of the person it authenticated: it writes that principal into
the command (`decided_by`) itself, never a value from the request, and signs the command with
its own key, so a browser holds no key and cannot claim to be anyone else. The proof is the
signed-command format (docs/signing.md: a compact JWS in the `countersign-proof` header, over
the command's exact bytes, `sub` the principal, `jti` the decision id), made by
`engine.trust.signing.proof_header`, with the roles the login proved under `roles` (they count
if the trust file gives this server's issuer a `roles_claim`).

`ServerSigner.headers` is all the rest of the server calls. Without a key, commands go out
unsigned: the embedded log accepts them (one machine), workers on Kafka refuse them with a
reason the page shows. `status` says which, for the server's first log line and `/health`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog

from countersign.settings import Settings
from engine.log.port import EventLog, Headers, Outgoing, Topics
from engine.trust import keys
from engine.trust.jws import SigningKey
from engine.trust.signing import proof_header
from events.codec import Codec
from events.commands import Command

log = structlog.get_logger(__name__)


class ServerSigner:
    """Signs with `key`, or leaves commands unsigned when None."""

    def __init__(self, key: SigningKey | None) -> None:
        self._key = key

    @property
    def status(self) -> str:
        if self._key is None:
            return "unsigned (no signing key for this server)"
        return f"signed as {self._key.issuer} (key {self._key.kid})"

    def headers(self, value: bytes, command: Command, roles: Sequence[str]) -> Headers:
        if self._key is None:
            return ()
        proof = proof_header(value, command, self._key, now_s=int(time.time()), roles=roles)
        return (proof,)


def server_signer(settings: Settings) -> ServerSigner:
    """The server's key: `COUNTERSIGN_SIGNING_KEY`, else the home's default key
    (`countersign keys create --default`)."""
    key = keys.signing_key(settings.home, None)
    if key is None:
        log.warning("web_commands_unsigned", reason="no signing key",
                    remedy="countersign keys create --issuer web --default, "
                    "or COUNTERSIGN_SIGNING_KEY")  # fmt: skip
    return ServerSigner(key)


def development_signer(settings: Settings) -> ServerSigner:
    """`countersign dev`: the home's development issuer, made on first use."""
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
