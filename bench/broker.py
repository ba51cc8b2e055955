"""The broker a Kafka benchmark talks to: COUNTERSIGN_KAFKA_BOOTSTRAP's, or one of its own."""

from __future__ import annotations

import asyncio
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
    broker settings added to its server.properties (it is started once, then again with
    them)."""
    bootstrap = os.environ.get("COUNTERSIGN_KAFKA_BOOTSTRAP")
    if bootstrap:
        yield bootstrap, None
        return
    state_dir = Path(tempfile.mkdtemp(prefix=f"cs-{name}-"))
    try:
        broker = local_kafka.start(state_dir, brokers=brokers, version=version)
        if settings:
            _restart_with(broker, brokers, version, settings)
        yield broker.bootstrap, state_dir
    finally:
        with contextlib.suppress(Exception):
            local_kafka.stop(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


def _restart_with(
    broker: local_kafka.LocalKafka, brokers: int, version: str, settings: Mapping[str, str]
) -> None:
    local_kafka.stop(broker.state_dir)
    java, jars = shutil.which("java") or "java", local_kafka.ensure_jars(version)
    for node_id in range(1, brokers + 1):
        node = local_kafka.node(broker.state_dir, node_id)
        path = node.dir / "server.properties"
        added = "".join(f"{key}={value}\n" for key, value in settings.items())
        path.write_text(path.read_text() + added)  # the last of a repeated key wins
        node.launch(java, f"{jars}/*")
    asyncio.run(local_kafka.wait_until_ready(broker.bootstrap, 90.0, brokers=brokers))
