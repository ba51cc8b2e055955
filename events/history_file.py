"""A run's history as a file: an Avro object container any Avro tool reads. Pure.

    data = write_history(codec, raws)          # raws: the run's events as the log holds them
    history = read_history(codec, data)        # its events, checked, and those exact bytes

The file's schema is a union of the writer schemas of the events in it (each event's record
is the union branch index, then its Avro body exactly as it sits in the log), so any Avro
tool lists the events with their fields. Metadata says what it is:

    countersign.format        countersign-history/1 (a reader refuses a format it does not know)
    countersign.release       the Countersign release that wrote the file
    countersign.fingerprints  each union branch's writer-schema fingerprint (hex, comma-separated)
    countersign.run_id, .agent, .agent_version, .events
    countersign.head          sha256 of the last event's bytes: the run's chain head
    countersign.redacted      "true" when personal fields were replaced (the chain then is the
                              redacted events' own; `countersign.origin_head` is the original's)

Reading trusts nothing in the file: each branch must be a schema this release reads (by
fingerprint; the embedded schema text must be exactly the one rebuilt from them), every
record is bounds-walked and decoded by the codec, and the events must chain from seq 0 to the
stated head. So a file imported into a log puts back byte for byte what was exported.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from events.bounds import read_long
from events.canonical import canonical_form
from events.codec import HEADER_LEN, MAGIC, Codec
from events.container import read_container, write_container, zigzag
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.errors import DecodeError, EncodeError

__all__ = [
    "FORMAT",
    "MAX_EVENTS",
    "HistoryFile",
    "HistoryFileError",
    "read_history",
    "write_history",
]

FORMAT = "countersign-history/1"
MAX_EVENTS = 1_000_000
_BLOCK = 1_000
_KEY = "countersign."


class HistoryFileError(DecodeError):
    """Not a history file this release reads, or one whose events do not hold together."""


@dataclass(frozen=True, slots=True)
class HistoryFile:
    run_id: str
    agent: str
    agent_version: str
    release: int
    """The Countersign release that wrote the file."""
    redacted: bool
    head: str
    events: tuple[EventEnvelope, ...]
    raw: tuple[bytes, ...]
    """Each event as the log holds it (single-object encoding): what an import appends."""
    origin_head: str = ""


def write_history(
    codec: Codec, raws: Sequence[bytes], *, redacted: bool = False, origin_head: str = ""
) -> bytes:
    """The file for one run's events (`raws`: single-object encoded, seq 0 onwards, as the
    log holds them). Refuses (`EncodeError`) events that are not one run's chain."""
    try:
        events = [codec.decode_event(raw) for raw in raws]
    except DecodeError as exc:
        raise EncodeError(f"cannot export an event: {exc}") from exc
    problem = chain_problem(events, raws)
    if problem:
        raise EncodeError(f"cannot export: {problem}")
    fingerprints: list[bytes] = []
    for raw in raws:
        fp = bytes(raw[2:HEADER_LEN])
        if fp not in fingerprints:
            fingerprints.append(fp)
    branch = {fp: i for i, fp in enumerate(fingerprints)}
    head = hash_encoded(raws[-1])
    first = events[0]
    metadata = {
        "avro.schema": union_schema(codec, fingerprints),
        f"{_KEY}format": FORMAT.encode(),
        f"{_KEY}release": str(codec.release).encode(),
        f"{_KEY}fingerprints": ",".join(fp.hex() for fp in fingerprints).encode(),
        f"{_KEY}run_id": first.run_id.encode(),
        f"{_KEY}agent": first.agent.encode(),
        f"{_KEY}agent_version": first.agent_version.encode(),
        f"{_KEY}events": str(len(raws)).encode(),
        f"{_KEY}head": head.encode(),
        f"{_KEY}redacted": b"true" if redacted else b"false",
    }
    if origin_head:
        metadata[f"{_KEY}origin_head"] = origin_head.encode()
    blocks = []
    for start in range(0, len(raws), _BLOCK):
        chunk = raws[start : start + _BLOCK]
        body = b"".join(
            zigzag(branch[bytes(raw[2:HEADER_LEN])]) + raw[HEADER_LEN:] for raw in chunk
        )
        blocks.append((len(chunk), body))
    sync = hashlib.sha256(f"{first.run_id}/{head}".encode()).digest()[:16]
    return write_container(metadata, blocks, sync)


def read_history(codec: Codec, data: bytes, *, max_events: int = MAX_EVENTS) -> HistoryFile:
    """The run in a history file, checked end to end; `HistoryFileError` (or another
    `DecodeError`) says why a file is refused."""
    try:
        container = read_container(data, max_records=max_events)
    except DecodeError as exc:
        raise HistoryFileError(str(exc)) from exc
    meta = container.metadata
    fingerprints = _header(codec, meta)
    events, raws = _records(codec, container.blocks, fingerprints)
    problem = chain_problem(events, raws)
    if problem:
        raise HistoryFileError(problem)
    head = hash_encoded(raws[-1])
    if _text(meta, "head") != head:
        raise HistoryFileError("the events do not end at the head the file states")
    first = events[0]
    if (_text(meta, "run_id"), _text(meta, "events")) != (first.run_id, str(len(events))):
        raise HistoryFileError("the file's run id or event count is not its events'")
    return HistoryFile(
        run_id=first.run_id,
        agent=first.agent,
        agent_version=first.agent_version,
        release=_release(meta),
        redacted=_text(meta, "redacted") == "true",
        head=head,
        events=tuple(events),
        raw=tuple(raws),
        origin_head=_text(meta, "origin_head"),
    )


def chain_problem(events: Sequence[EventEnvelope], raws: Sequence[bytes]) -> str:
    """Why `events` (with their bytes `raws`) are not one run's chain from seq 0, or ""."""
    if not events:
        return "no events"
    expected = GENESIS_HASH
    for seq, (event, raw) in enumerate(zip(events, raws, strict=True)):
        if event.run_id != events[0].run_id:
            return f"seq {seq} is an event of another run"
        if event.seq != seq:
            return f"seq {event.seq} where {seq} comes next"
        if event.prev_hash != expected:
            return f"seq {seq} does not carry the hash of seq {seq - 1}"
        expected = hash_encoded(raw)
    return ""


def union_schema(codec: Codec, fingerprints: Sequence[bytes]) -> bytes:
    """The file's schema: a union of the writer schemas `fingerprints` name, in that order.
    A named type defined identically by an earlier branch is referred to by name; one that
    differs (two versions of a type in one run, across an upgrade) is renamed with the
    branch's fingerprint, so that the union is valid Avro."""
    defined: dict[str, str] = {}
    branches = []
    for fp in fingerprints:
        raw = codec.writer_schema(fp)
        if raw is None:
            raise HistoryFileError(f"no schema with fingerprint {fp.hex()} in this release")
        branches.append(_merged(json.loads(canonical_form(raw)), defined, {}, fp.hex()[:8]))
    return json.dumps(branches, separators=(",", ":")).encode()


def _merged(node: Any, defined: dict[str, str], renamed: dict[str, str], tag: str) -> Any:
    if isinstance(node, str):
        return renamed.get(node, node)
    if isinstance(node, list):
        return [_merged(branch, defined, renamed, tag) for branch in node]
    if not isinstance(node, dict):
        return node
    out = dict(node)
    if "name" in node:
        name = str(node["name"])
        text = json.dumps(node, separators=(",", ":"), sort_keys=True)
        if defined.get(name) == text:
            return name  # the same definition is already in the union
        if name in defined:
            renamed[name] = out["name"] = f"{name}_{tag}"
        else:
            defined[name] = text
    if "fields" in node:
        out["fields"] = [
            {**f, "type": _merged(f["type"], defined, renamed, tag)} for f in node["fields"]
        ]
    for key in ("items", "values"):
        if key in node:
            out[key] = _merged(node[key], defined, renamed, tag)
    return out


def _header(codec: Codec, meta: Mapping[str, bytes]) -> list[bytes]:
    found = _text(meta, "format")
    if found != FORMAT:
        what = f"format {found[:64]!r}" if found else "no countersign.format"
        raise HistoryFileError(f"not a history file this release reads ({what}; it reads {FORMAT})")
    try:
        fingerprints = [bytes.fromhex(h) for h in _text(meta, "fingerprints").split(",")]
    except ValueError as exc:
        raise HistoryFileError(
            "countersign.fingerprints is not a list of hex fingerprints"
        ) from exc
    if any(len(fp) != HEADER_LEN - 2 for fp in fingerprints):
        raise HistoryFileError("countersign.fingerprints holds a fingerprint of the wrong size")
    unknown = [fp.hex() for fp in fingerprints if codec.writer_schema(fp) is None]
    if unknown:
        release = _text(meta, "release")
        raise HistoryFileError(
            f"written with schemas this release does not read ({', '.join(unknown[:3])}; "
            f"the file is from release {release[:16]}, this is release {codec.release})"
        )
    if meta.get("avro.schema") != union_schema(codec, fingerprints):
        raise HistoryFileError("the embedded schema is not the one its fingerprints name")
    return fingerprints


def _records(
    codec: Codec, blocks: Sequence[tuple[int, bytes]], fingerprints: Sequence[bytes]
) -> tuple[list[EventEnvelope], list[bytes]]:
    """Each record's event (bounds-walked and decoded once) and its bytes as the log held
    them (the single-object header, then the body)."""
    events, raws = [], []
    for count, data in blocks:
        pos = 0
        for _ in range(count):
            try:
                branch, pos = read_long(data, pos)
            except (IndexError, DecodeError) as exc:
                raise HistoryFileError("a block ends inside a record") from exc
            if not 0 <= branch < len(fingerprints):
                raise HistoryFileError(f"a record names union branch {branch}")
            fp = fingerprints[branch]
            try:
                event, end = codec.decode_event_body(fp, data, pos)
            except DecodeError as exc:
                raise HistoryFileError(f"an event does not decode: {exc}") from exc
            events.append(event)
            raws.append(MAGIC + fp + data[pos:end])
            pos = end
        if pos != len(data):
            raise HistoryFileError(f"{len(data) - pos} bytes after a block's {count} records")
    if not raws:
        raise HistoryFileError("the file holds no events")
    return events, raws


def _release(meta: Mapping[str, bytes]) -> int:
    text = _text(meta, "release")
    if not text.isdigit() or len(text) > 9:
        raise HistoryFileError(f"countersign.release {text[:16]!r} is not a release number")
    return int(text)


def _text(meta: Mapping[str, bytes], key: str) -> str:
    try:
        return meta.get(f"{_KEY}{key}", b"").decode()
    except UnicodeDecodeError as exc:
        raise HistoryFileError(f"countersign.{key} is not UTF-8") from exc
