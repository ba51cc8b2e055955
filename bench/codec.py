"""What decoding costs: a current message, one resolved from an older writer schema, one
carried by an upcaster, and where the time goes (bounds walk, fastavro, building objects).

Release 1's golden payloads are the messages; "release 2" is tests/release2.py (fields added
to RunStarted, ToolCallCompleted and SubmitDecision, RunCompleted renamed by an upcaster).

    .venv/bin/python bench/codec.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from events import avro
from events.bounds import walk
from events.codec import HEADER_LEN, Codec
from tests.release2 import release2_codec
from tests.unit.golden import PAYLOADS

ROUNDS = 9


def per_call_us(*fns: Callable[[], object], calls: int) -> list[float]:
    """For each function, the best of ROUNDS mean times per call (µs). The functions take
    turns within each round, so a busy shared machine slows them alike; the best round is
    the one least disturbed."""
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(ROUNDS):
        for fn, out in zip(fns, samples, strict=True):
            started = time.perf_counter()
            for _ in range(calls):
                fn()
            out.append((time.perf_counter() - started) / calls * 1e6)
    return [min(out) for out in samples]


def main() -> None:
    r1 = Codec()
    with tempfile.TemporaryDirectory() as tmp:
        r2 = release2_codec(Path(tmp))
    payload = {name: (PAYLOADS / f"{name}.bin").read_bytes() for name in (
        "run_started", "tool_call_completed", "submit_decision", "run_completed",
        "interrupt_raised", "tool_call_scheduled",
    )}  # fmt: skip
    calls = 3_000
    print(f"decode, µs per message (best of {ROUNDS} interleaved rounds of {calls:,})")
    print(f"{'message':<22}{'current (r1 reads r1)':>24}{'r2 reads r1':>14}{'how':>14}")
    for name, data in payload.items():
        current, later = per_call_us(
            lambda d=data: r1.decode(d),  # type: ignore[misc]
            lambda d=data: r2.decode(d),  # type: ignore[misc]
            calls=calls,
        )
        writer = r2._by_fingerprint[bytes(data[2:HEADER_LEN])]
        how = "upcast" if writer.upcasters else "resolved" if writer.reader else "same schema"
        print(f"{name:<22}{current:>24.1f}{later:>14.1f}{how:>14}")

    print("\nwhere the time goes for interrupt_raised (the largest), µs")
    data = payload["interrupt_raised"]
    writer = r1._by_fingerprint[bytes(data[2:HEADER_LEN])]
    parts = {
        "bounds walk": lambda: walk(writer.walk, data, HEADER_LEN),
        "fastavro read": lambda: avro.read(data, HEADER_LEN, writer.schema, None),
        "whole decode": lambda: r1.decode(data),
        "encode (checks by decoding)": lambda: r1.encode(r1.decode(data)),
    }
    for label, cost in zip(parts, per_call_us(*parts.values(), calls=calls), strict=True):
        print(f"  {label:<30}{cost:>8.1f}")


if __name__ == "__main__":
    main()
