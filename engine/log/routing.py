"""Where a run lives: run id → home partition, across repartitionings. Pure.

A run's home is murmur2(run id) over the partition count in force when it STARTED, so adding
partitions never moves a run. The counts in force over time are the *partition map*: a list
of eras, oldest first (`4,8` = started with 4 partitions, grown to 8). A run id therefore has
one candidate home per era (`candidates`, newest first, repeats removed); a worker knows which
runs live on its own partitions, and a command walks the candidates until one knows its run:

- a command is handled where its run is known (live, or finished and still remembered);
- otherwise it goes to the newest candidate, then to each older one in turn ("visit"), and
  if none knows the run it returns to the newest candidate "settled": a StartRun creates the
  run there, any other command is refused there as for an unknown run.

Why this never creates one run twice: a run is created only at a partition in order, and only
after every older candidate was visited; a worker whose map is older than a visiting record's
reloads the map first (`needs_newer_map`), so a stale worker that could still create at an old
home has, by then, either created the run (the walk finds it) or learnt the new era (it
forwards instead). The proof and the cost: docs/kafka-production.md#repartitioning.

The walk's position travels in the `countersign.route` header of a forwarded command. With a
route key (shared by the workers) the header is authenticated; a header that does not verify,
or that is malformed, restarts the walk, so a forged header cannot skip a candidate.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from engine.log.port import partition_for

__all__ = [
    "MAX_ERAS",
    "MAX_PARTITIONS",
    "ROUTE_HEADER",
    "Forward",
    "Handle",
    "PartitionMap",
    "Refuse",
    "Route",
    "RoutingError",
    "candidates",
    "home",
    "needs_newer_map",
    "route",
]

ROUTE_HEADER = "countersign.route"
MAX_ERAS = 64
MAX_PARTITIONS = 10_000
_MAX_MAP_BYTES = MAX_ERAS * 6
_MAX_HEADER_BYTES = 128
_MAC_BYTES = 16


class RoutingError(ValueError):
    """A partition map or a route header that cannot be what it claims (terminal)."""


@dataclass(frozen=True, slots=True)
class PartitionMap:
    """The partition counts a deployment has had, oldest first (strictly increasing)."""

    eras: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.eras) <= MAX_ERAS:
            raise RoutingError(f"a partition map has 1 to {MAX_ERAS} eras, not {len(self.eras)}")
        if any(not 1 <= count <= MAX_PARTITIONS for count in self.eras):
            raise RoutingError(f"partition counts are 1 to {MAX_PARTITIONS}: {self.eras}")
        if any(older >= newer for older, newer in zip(self.eras, self.eras[1:], strict=False)):
            raise RoutingError(f"partition counts only grow: {self.eras}")

    @classmethod
    def single(cls, partitions: int) -> PartitionMap:
        """A deployment never repartitioned."""
        return cls((partitions,))

    @property
    def partitions(self) -> int:
        """The partition count in force now: where new runs start."""
        return self.eras[-1]

    @property
    def era(self) -> int:
        return len(self.eras) - 1

    def grown(self, partitions: int) -> PartitionMap:
        if partitions <= self.partitions:
            raise RoutingError(
                f"partitions can only be added: {partitions} is not above {self.partitions}"
            )
        return PartitionMap((*self.eras, partitions))

    def encode(self) -> bytes:
        return ",".join(str(count) for count in self.eras).encode()

    @classmethod
    def decode(cls, data: bytes) -> PartitionMap:
        if len(data) > _MAX_MAP_BYTES:
            raise RoutingError(f"a partition map record of {len(data)} bytes is too large")
        parts = data.split(b",")
        if not all(part.isdigit() and len(part) <= 5 for part in parts):
            raise RoutingError(f"not a partition map: {data[:40]!r}")
        return cls(tuple(int(part) for part in parts))


def home(run_id: str, partition_map: PartitionMap) -> int:
    """Where a run started now lives (and where a murmur2 client sends its commands)."""
    return partition_for(run_id, partition_map.partitions)


def candidates(run_id: str, partition_map: PartitionMap) -> tuple[int, ...]:
    """Every partition the run can live on, newest era first, each once."""
    seen: dict[int, None] = {}
    for count in reversed(partition_map.eras):
        seen.setdefault(partition_for(run_id, count), None)
    return tuple(seen)


@dataclass(frozen=True, slots=True)
class Handle:
    """Handle the command on this partition (the run lives here, or it is new/unknown)."""


@dataclass(frozen=True, slots=True)
class Forward:
    """Append the command, unchanged but for this header, to `partition` of the commands
    topic, in the same commit as consuming it."""

    partition: int
    header: bytes


@dataclass(frozen=True, slots=True)
class Refuse:
    """Dead-letter the command with `reason`."""

    reason: str


Route = Handle | Forward | Refuse


def needs_newer_map(header: bytes | None, partition_map: PartitionMap) -> bool:
    """Whether a record was routed under a newer map than `partition_map`: reload the map
    (once per batch is enough) before routing it."""
    step = _parse(header, None)
    return step is not None and step.era > partition_map.era


def route(
    run_id: str,
    partition: int,
    header: bytes | None,
    partition_map: PartitionMap,
    *,
    known_here: bool,
    key: bytes | None = None,
) -> Route:
    """What the owner of `partition` does with a command for `run_id` that arrived there
    with route `header` (None: straight from a client). `known_here`: the run is live or
    remembered on this partition. `key`: the workers' route key, if the deployment has one."""
    homes = candidates(run_id, partition_map)
    step = _parse(header, key)
    if step is not None and step.era > partition_map.era:
        return Refuse(
            f"routed under partition map era {step.era}, this worker's map has era "
            f"{partition_map.era}: reload the map before routing"
        )
    if known_here:
        return Handle()
    if step is None or step.era < partition_map.era or not step.matches(partition, homes):
        step = _Step(partition_map.era, "visit", 0)  # (re)start the walk at the newest home
        if partition != homes[0]:
            return Forward(homes[0], step.encode(key))
    if step.kind == "settled" or len(homes) == 1:
        return Handle()
    if step.index + 1 < len(homes):
        following = _Step(step.era, "visit", step.index + 1)
        return Forward(homes[step.index + 1], following.encode(key))
    return Forward(homes[0], _Step(step.era, "settled", 0).encode(key))


@dataclass(frozen=True, slots=True)
class _Step:
    """Where a walk is: visiting candidate `index` of era `era`, or settled at the newest."""

    era: int
    kind: str  # "visit" | "settled"
    index: int

    def matches(self, partition: int, homes: tuple[int, ...]) -> bool:
        return self.index < len(homes) and homes[self.index] == partition

    def encode(self, key: bytes | None) -> bytes:
        body = f"{self.kind}:{self.era}:{self.index}".encode()
        return body if key is None else body + b"." + _mac(key, body).hex().encode()


def _parse(header: bytes | None, key: bytes | None) -> _Step | None:
    """The walk position a header states, or None (absent, malformed or not authentic:
    the walk restarts, which is always safe)."""
    if header is None or len(header) > _MAX_HEADER_BYTES:
        return None
    body, dot, mac = header.partition(b".")
    if key is not None and not (dot and hmac.compare_digest(mac, _mac(key, body).hex().encode())):
        return None
    fields = body.split(b":")
    if len(fields) != 3 or fields[0] not in (b"visit", b"settled"):
        return None
    era, index = fields[1], fields[2]
    if not (era.isdigit() and index.isdigit() and len(era) <= 3 and len(index) <= 3):
        return None
    return _Step(int(era), fields[0].decode(), int(index))


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]
