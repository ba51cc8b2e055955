"""The partition map as recorded in the routing topic, on any event log (I/O).

The routing topic (`Topics.routing`, one partition, never compacted) holds the map's
history, one record per change; the last record is the map in force. A deployment whose
routing topic is missing or empty has never been repartitioned: its map is the commands
topic's partition count.
"""

from __future__ import annotations

from engine.errors import ConfigurationError
from engine.log.port import EventLog, Outgoing, Record, Topics
from engine.log.routing import PartitionMap, RoutingError

__all__ = ["MAP_KEY", "load_partition_map", "record_partition_map"]

MAP_KEY = "partition-map"


async def load_partition_map(log: EventLog, topics: Topics) -> PartitionMap:
    """The map in force. Reload it when `engine.log.routing.needs_newer_map` says so."""
    try:
        await log.partition_count(topics.routing)
    except ConfigurationError:  # no routing topic: never repartitioned
        return PartitionMap.single(await log.partition_count(topics.commands))
    latest: Record | None = None
    async for record in log.read(topics.routing, 0, 0):
        latest = record
    if latest is None:
        return PartitionMap.single(await log.partition_count(topics.commands))
    try:
        return PartitionMap.decode(latest.value)
    except RoutingError as error:
        raise ConfigurationError(
            f"{topics.routing}@{latest.offset} is not a partition map ({error}); only "
            "`countersign topics repartition` writes there"
        ) from error


async def record_partition_map(log: EventLog, topics: Topics, partition_map: PartitionMap) -> None:
    """Append `partition_map` as the map in force (after the partitions exist)."""
    await log.publish([Outgoing(topics.routing, MAP_KEY, partition_map.encode(), partition=0)])
