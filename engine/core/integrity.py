"""What a restore may trust of a run's records: the chain from seq 0, and what breaks it. Pure.

A run's events are contiguous from seq 0 and each carries the hash of the one before it
(`prev_hash`). Reading a run's records in log order, every record that extends that chain is
taken; every other one is a stray, with the reason: undecodable, another run's, a duplicate
of an event already taken, a second event at a seq already taken (a fork: the first in log
order stays the chain), a gap, or a record whose `prev_hash` is not the chain's.

A run with a stray that no earlier quarantine of it already named is quarantined by the
worker (`RunQuarantined`): it takes no decision and runs no tool until an operator cancels
it or accepts its chain as it is. The chain check cannot tell a record forged with the
right seq and hash from a real one; signed chain heads (the audit anchors) can.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.errors import DecodeError
from events.json import Json
from events.run_events import RunQuarantined

__all__ = ["MAX_STRAYS_NAMED", "CheckedRun", "Stray", "check_run", "quarantine_event"]

MAX_STRAYS_NAMED = 100


@dataclass(frozen=True, slots=True)
class Stray:
    offset: int
    why: str


@dataclass
class CheckedRun:
    run_id: str
    chain: list[tuple[EventEnvelope, bytes, int]] = field(default_factory=list)
    """(event, its bytes, its offset), seq 0 onwards."""
    strays: list[Stray] = field(default_factory=list)


def check_run(
    decode: Callable[[int, bytes], EventEnvelope],
    run_id: str,
    records: Iterable[tuple[int, bytes]],
) -> CheckedRun:
    """Sort a run's records, (offset, bytes) in log order, into its chain and its strays.
    `decode(offset, bytes)` raises `DecodeError` for what it cannot read."""
    checked = CheckedRun(run_id)
    hashes: list[str] = []
    for offset, value in records:
        try:
            envelope = decode(offset, value)
        except DecodeError as exc:
            checked.strays.append(Stray(offset, f"undecodable: {str(exc)[:200]}"))
            continue
        if envelope.run_id != run_id:
            checked.strays.append(Stray(offset, f"an event of run {envelope.run_id[:80]!r}"))
            continue
        digest = hash_encoded(value)
        why = _why_not_next(envelope, digest, hashes)
        if why:
            checked.strays.append(Stray(offset, why))
            continue
        checked.chain.append((envelope, value, offset))
        hashes.append(digest)
    return checked


def _why_not_next(envelope: EventEnvelope, digest: str, hashes: list[str]) -> str:
    seq, taken = envelope.seq, len(hashes)
    if seq < taken:
        if hashes[seq] == digest:
            return f"a duplicate of seq {seq}"
        return f"a second event at seq {seq} (a fork; the first in the log is kept)"
    if seq > taken:
        return f"seq {seq} where {taken} comes next (a gap)"
    expected = hashes[-1] if hashes else GENESIS_HASH
    if envelope.prev_hash != expected:
        return f"seq {seq} does not carry the hash of seq {seq - 1}"
    return ""


def quarantine_event(strays: list[Stray]) -> RunQuarantined:
    """The event that quarantines a run for `strays` (the first `MAX_STRAYS_NAMED` named; a
    later restore that finds more, unnamed, quarantines it again only after it was lifted)."""
    named: list[Json] = [{"offset": s.offset, "why": s.why} for s in strays[:MAX_STRAYS_NAMED]]
    count = f"{len(strays)} record{'s' if len(strays) != 1 else ''}"
    reason = f"{count} of the run's log do not extend its chain (first: {strays[0].why})"
    return RunQuarantined(reason=reason, strays=named)
