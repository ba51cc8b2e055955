"""Signed chain-head anchors: what a worker attests its runs partition held. Pure.

Every anchor of runs partition P goes to partition P of the anchors topic, in the same
atomic commit as the events it covers, as a compact JWS signed with the worker's key
(`typ` countersign-anchor+jwt) whose claims are:

    {"iss": "countersign-worker", "partition": P, "seq": N, "prev": SHA256_OF_ANCHOR_N-1,
     "heads": {RUN_ID: [SEQ, HASH], ...}, "through": OFFSET, "events": K, "iat": SECONDS}

- `seq` counts anchors of the partition from 0 and `prev` is the sha256 (hex) of the
  previous anchor's bytes ("" for the first): a deleted, reordered or replaced anchor shows.
- `heads`: each run appended to since the previous anchor, with the seq and hash of its
  last event (its chain head). Since each event names its predecessor's hash, a head
  attests the run's whole history up to it: a changed event, a re-chained tail, a deleted
  run or a truncated one cannot match it any more, and only the worker key can sign anew.
- `through`: every runs record of the partition at an offset below it is covered by this
  anchor or an earlier one (an event there that no anchor names was put there afterwards).
- `events`: how many events the anchor covers (for the figures).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.trust.jws import (
    MAX_ANCHOR_CHARS,
    BadToken,
    SigningKey,
    VerifyKey,
    read_claims,
    read_header,
    sign,
    verify,
)

__all__ = ["ANCHOR_ISSUER", "ANCHOR_TYP", "Anchor", "anchor_hash", "encode_anchor", "read_anchor"]

ANCHOR_TYP = "countersign-anchor+jwt"
ANCHOR_ISSUER = "countersign-worker"


@dataclass(frozen=True, slots=True)
class Anchor:
    partition: int
    seq: int
    prev: str
    heads: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    through: int = 0
    events: int = 0
    issued_at: int = 0


def anchor_hash(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def encode_anchor(anchor: Anchor, key: SigningKey) -> bytes:
    claims = {
        "partition": anchor.partition,
        "seq": anchor.seq,
        "prev": anchor.prev,
        "heads": {run: [seq, digest] for run, (seq, digest) in sorted(anchor.heads.items())},
        "through": anchor.through,
        "events": anchor.events,
        "iat": anchor.issued_at,
    }
    return sign(claims, key, typ=ANCHOR_TYP).encode("ascii")


def read_anchor(value: bytes, keys: Mapping[str, VerifyKey] | None) -> Anchor:
    """The anchor in `value`, its signature checked against `keys` (None: not checked, for
    a worker continuing its own sequence). `BadToken` says why it is not one."""
    try:
        token = value.decode("ascii")
    except UnicodeDecodeError as exc:
        raise BadToken("not a compact JWS") from exc
    if keys is None:
        claims = read_claims(token)
    else:
        _, kid = read_header(token, MAX_ANCHOR_CHARS)
        key = keys.get(kid)
        if key is None:
            raise BadToken(f"signed with key {kid[:64]!r}, which is not a trusted worker key")
        claims = verify(token, key, typ=ANCHOR_TYP)
    return _anchor(claims)


def _anchor(claims: Mapping[str, object]) -> Anchor:
    partition, seq, through = claims.get("partition"), claims.get("seq"), claims.get("through")
    prev, heads, events = claims.get("prev"), claims.get("heads"), claims.get("events", 0)
    whole = all(type(v) is int for v in (partition, seq, through, events))
    if not whole or not isinstance(prev, str) or not isinstance(heads, dict):
        raise BadToken("an anchor needs partition, seq, through, events, prev and heads")
    parsed: dict[str, tuple[int, str]] = {}
    for run, head in heads.items():
        if (
            not isinstance(head, list)
            or len(head) != 2
            or type(head[0]) is not int
            or not isinstance(head[1], str)
        ):
            raise BadToken(f"the head of run {run[:64]!r} is not [seq, hash]")
        parsed[run] = (head[0], head[1])
    iat = claims.get("iat", 0)
    return Anchor(
        partition=partition,  # type: ignore[arg-type]
        seq=seq,  # type: ignore[arg-type]
        prev=prev,
        heads=parsed,
        through=through,  # type: ignore[arg-type]
        events=events,  # type: ignore[arg-type]
        issued_at=iat if type(iat) is int else 0,
    )
