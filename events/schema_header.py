"""The `countersign-schema` record header: how an older release tells "written by a newer
release" from "corrupt". Pure.

Every record Countersign writes can carry, beside its bytes, a claim naming the writer
schema: `<full name>;v=<version>;r=<release>;fp=<fingerprint hex>`. A release that meets a
fingerprint it does not know believes the claim only if it is well-formed, names one of our
namespaces, carries the same fingerprint as the message's own header, and names a release
newer than its own. Anything else is junk, as before (`UnknownSchema`): a header copied onto
other bytes does not match their fingerprint, and a claim of a release we know is a lie. Whoever
can write to the runs topic could still forge a matching claim, but then it only delays that
record until a newer worker, which reads the bytes and judges them, takes the partition.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from events.errors import DecodeError, NewerSchema, UnknownSchema

SCHEMA_HEADER = "countersign-schema"
_MAX_CLAIM_BYTES = 256
_CLAIM = re.compile(
    r"(countersign\.(?:events|commands|approvals|internal)\.[A-Za-z_][A-Za-z0-9_]{0,99})"
    r";v=([1-9][0-9]{0,5});r=([1-9][0-9]{0,5});fp=([0-9a-f]{16})"
)


@dataclass(frozen=True)
class SchemaClaim:
    name: str
    version: int
    release: int
    fingerprint: bytes

    def encode(self) -> bytes:
        text = f"{self.name};v={self.version};r={self.release};fp={self.fingerprint.hex()}"
        return text.encode("ascii")

    @classmethod
    def parse(cls, value: bytes) -> SchemaClaim | None:
        if len(value) > _MAX_CLAIM_BYTES:
            return None
        match = _CLAIM.fullmatch(value.decode("ascii", errors="replace"))
        if match is None:
            return None
        name, version, release, fingerprint = match.groups()
        return cls(name, int(version), int(release), bytes.fromhex(fingerprint))


def newer_or_unknown(
    fingerprint: bytes, headers: Sequence[tuple[str, bytes]], release: int
) -> DecodeError:
    """The error for a message whose fingerprint this release does not know."""
    claims = [SchemaClaim.parse(value) for key, value in headers if key == SCHEMA_HEADER]
    claim = claims[0] if len(claims) == 1 else None
    if claim is not None and claim.fingerprint == fingerprint and claim.release > release:
        return NewerSchema(
            f"{claim.name} version {claim.version} was written by release {claim.release}; "
            f"this is release {release}: leave it to a newer worker",
            release=claim.release,
            schema=claim.name,
        )
    return UnknownSchema(f"unknown schema fingerprint {fingerprint.hex()}")
