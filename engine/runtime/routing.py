"""The partition map a worker routes commands by, loaded from the log and kept current (I/O)."""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from engine.log.port import EventLog, Record, Topics
from engine.log.routing import ROUTE_HEADER, PartitionMap, needs_newer_map
from engine.log.routing_log import load_partition_map

__all__ = ["Routing"]

log = structlog.get_logger(__name__)


class Routing:
    """The map in force (`engine.log.routing`), reloaded at each assignment and whenever a
    command was routed under a newer one; `key` authenticates route headers."""

    def __init__(self, event_log: EventLog, topics: Topics, key: bytes | None) -> None:
        self._log = event_log
        self._topics = topics
        self.key = key
        self.map = PartitionMap.single(1)
        self._stale = True

    def stale(self) -> None:
        """Partitions moved: read the map again before the next batch."""
        self._stale = True

    async def current(self, records: Iterable[Record] = ()) -> PartitionMap:
        if self._stale or any(needs_newer_map(r.header(ROUTE_HEADER), self.map) for r in records):
            self.map = await load_partition_map(self._log, self._topics)
            self._stale = False
            log.info("partition_map_loaded", eras=list(self.map.eras))
        return self.map
