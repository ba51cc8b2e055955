"""The cyclic garbage collector tuned for a process that works in large batches (I/O: it
changes the interpreter's collector, for the whole process).

A projector holds each batch it reads (2,000 records decoded into a few objects each) until
the batch is written, so with the default thresholds every young collection finds the batch
still alive and promotes it, and the old generation fills with batches that are garbage soon
after: profiled on `bench/projections.py`, the collector took 10 to 13 µs of the projector's
~50 µs of CPU an event, 7 of them in full collections walking everything alive.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 100_000
"""Young collections run when the tracked objects allocated and not yet freed since the last
one pass this (the default is 700). Counted net of frees, so a batch that is written and
dropped gives its count back: at 10,000 a batch in flight (2,000 records and their rows, the
next batch decoded meanwhile) still crossed it, and each collection walked and promoted the
batch, 2.7 µs of the projector's CPU an event; at 100,000 no collection ran while 200,000
events were projected. Garbage cycles are not freed, so they still reach it and are
collected: at most this many unreachable objects wait for it."""


def tune_for_batches() -> None:
    """Freeze what start-up left alive (modules, settings, connections: never garbage, no
    longer walked by every full collection) and raise the young generation's threshold. Call
    it once, after start-up, in a process of its own: objects alive now are never collected
    afterwards, even if they later become unreachable cycles."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
