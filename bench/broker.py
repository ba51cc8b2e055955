"""The broker a Kafka benchmark talks to: COUNTERSIGN_KAFKA_BOOTSTRAP's, or one of its own."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from countersign import local_kafka


@contextlib.contextmanager
def kafka(
    brokers: int = 1,
    *,
    name: str = "bench",
    version: str = local_kafka.KAFKA_VERSION,
    settings: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, Path | None]]:
    """(bootstrap, state directory); a broker started here (state directory not None) is
    stopped and its directory removed on the way out, whatever happened. `version`: Kafka's
    release for a broker started here (the product's pinned one by default); `settings`:
    broker settings over the local broker's own."""
    bootstrap = os.environ.get("COUNTERSIGN_KAFKA_BOOTSTRAP")
    if bootstrap:
        if settings or version != local_kafka.KAFKA_VERSION:  # they would be ignored
            raise SystemExit(
                "a Kafka version or broker settings apply to the bench's own broker: "
                "unset COUNTERSIGN_KAFKA_BOOTSTRAP to use them"
            )
        yield bootstrap, None
        return
    state_dir = Path(tempfile.mkdtemp(prefix=f"cs-{name}-"))
    try:
        broker = local_kafka.start(state_dir, brokers=brokers, version=version, settings=settings)
        yield broker.bootstrap, state_dir
    finally:
        with contextlib.suppress(Exception):
            local_kafka.stop(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
