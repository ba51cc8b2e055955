"""Personal values sealed with their subject's key, and what they read as once it is gone. Pure.

A sealed value is a JSON object standing where the value was:

    {"countersign.sealed": {"subject": "cust-7", "path": "args.email", "data": "<base64>"}}

`data` is a 12-byte nonce and the AES-256-GCM ciphertext of the value's canonical JSON; the
associated data binds the subject, the run and the path, so a sealed value copied to another
run, field or subject does not open. The log (and its hash chain) holds these bytes: when
the subject's key is destroyed the chain still verifies, and the value reads as

    {"countersign.erased": "cust-7"}

(`{"countersign.unreadable": ...}` when the key is there but the value does not open: it
was not sealed here). The nonce comes in from the caller (the shell's randomness).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from events.json import Json, JsonObject, canonical_json, loads

__all__ = [
    "ERASED",
    "KEY_BYTES",
    "NONCE_BYTES",
    "SEALED",
    "UNREADABLE",
    "Sealed",
    "erased",
    "open_json",
    "open_sealed",
    "replace_sealed",
    "seal",
    "sealed_in",
    "sealed_of",
    "shown",
    "withheld_in",
]

SEALED = "countersign.sealed"
ERASED = "countersign.erased"
UNREADABLE = "countersign.unreadable"
KEY_BYTES = 32
NONCE_BYTES = 12
_MAX_SUBJECT = 256
_MAX_PATH = 256


@dataclass(frozen=True, slots=True)
class Sealed:
    subject: str
    path: str
    data: bytes


def _aad(subject: str, run_id: str, path: str) -> bytes:
    return canonical_json([subject, run_id, path]).encode()


def seal(key: bytes, nonce: bytes, *, subject: str, run_id: str, path: str, value: Json) -> Json:
    """`value` sealed for `subject` at `path` of `run_id`'s event."""
    plain = canonical_json(value).encode()
    data = nonce + AESGCM(key).encrypt(nonce, plain, _aad(subject, run_id, path))
    return {SEALED: {"subject": subject, "path": path, "data": base64.b64encode(data).decode()}}


def sealed_of(value: Json) -> Sealed | None:
    """The sealed value `value` is, or None (a malformed one is None: it opens nothing)."""
    if not isinstance(value, dict) or len(value) != 1 or SEALED not in value:
        return None
    inner = value[SEALED]
    if not isinstance(inner, dict):
        return None
    subject, path, data = inner.get("subject"), inner.get("path"), inner.get("data")
    if not (isinstance(subject, str) and isinstance(path, str) and isinstance(data, str)):
        return None
    if not (0 < len(subject) <= _MAX_SUBJECT and len(path) <= _MAX_PATH):
        return None
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    return Sealed(subject, path, raw) if len(raw) > NONCE_BYTES else None


def open_sealed(sealed: Sealed, key: bytes | None, run_id: str) -> Json:
    """The value, `erased(...)` when the key is gone (None), or unreadable."""
    if key is None:
        return erased(sealed.subject)
    nonce, body = sealed.data[:NONCE_BYTES], sealed.data[NONCE_BYTES:]
    try:
        plain = AESGCM(key).decrypt(nonce, body, _aad(sealed.subject, run_id, sealed.path))
        return loads(plain.decode())
    except (InvalidTag, ValueError):
        return {UNREADABLE: sealed.subject}


def erased(subject: str) -> JsonObject:
    return {ERASED: subject}


def shown(value: Json) -> Json:
    """An erased or unreadable value as people read it: the word `erased` (`unreadable`)."""
    if isinstance(value, dict) and len(value) == 1:
        if ERASED in value:
            return "erased"
        if UNREADABLE in value:
            return "unreadable"
    return value


def open_json(value: Json, run_id: str, key: Callable[[str], bytes | None], *, show: bool) -> Json:
    """`value` with its sealed values opened (or erased); `show`: as people read them."""

    def opener(sealed: Sealed) -> Json:
        opened = open_sealed(sealed, key(sealed.subject), run_id)
        return shown(opened) if show else opened

    return replace_sealed(value, opener)


def sealed_in(value: Json) -> list[Sealed]:
    """Every sealed value at any depth of `value` (iteratively: a hostile depth is bounded
    by the JSON reader already, but recursion is not needed)."""
    found: list[Sealed] = []
    stack = [value]
    while stack:
        node = stack.pop()
        sealed = sealed_of(node)
        if sealed is not None:
            found.append(sealed)
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def withheld_in(value: Json) -> str | None:
    """The subject of the first erased or unreadable value inside `value`, or None."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if len(node) == 1 and (ERASED in node or UNREADABLE in node):
                subject = node.get(ERASED, node.get(UNREADABLE))
                return subject if isinstance(subject, str) else "?"
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


def replace_sealed(value: Json, opener: Callable[[Sealed], Json]) -> Json:
    """`value` with every sealed value replaced by `opener(sealed)`."""
    sealed = sealed_of(value)
    if sealed is not None:
        return opener(sealed)
    if isinstance(value, dict):
        return {k: replace_sealed(v, opener) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_sealed(v, opener) for v in value]
    return value
