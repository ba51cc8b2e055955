"""A three-node local Kafka cluster for failover tests, and the faults done to its nodes.

Nodes are signalled by their own pids (never by name). The active controller is read from the
nodes' `quorum-state` files (KRaft writes the leader and its epoch there at every election);
partition leaders and in-sync replicas from a metadata request.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from countersign import local_kafka
from engine.log.kafka import admin

NODES = (1, 2, 3)


@dataclass
class Cluster:
    bootstrap: str
    state_dir: Path

    async def leaders(self, topic: str) -> dict[int, int]:
        """Leader node of each partition of `topic` (-1: none)."""
        states = await admin.replicas(self.bootstrap, [topic])
        return {partition: leader for (_, partition), (leader, _) in states.items()}

    def active_controller(self) -> int:
        """The quorum leader with the highest epoch any live node has recorded."""
        best = (-1, -1)
        for node_id in NODES:
            node = local_kafka.node(self.state_dir, node_id)
            if node.running_pid() is None:
                continue
            path = node.data_dir / "__cluster_metadata-0" / "quorum-state"
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            best = max(best, (int(state["leaderEpoch"]), int(state["leaderId"])))
        if best[1] < 0:
            raise AssertionError("no node knows the active controller")
        return best[1]

    def kill(self, node_id: int) -> None:
        """SIGKILL: no clean shutdown, no leadership handed over."""
        node = local_kafka.node(self.state_dir, node_id)
        pid = node.signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid is not None and node.running_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def pause(self, node_id: int) -> None:
        local_kafka.pause_node(self.state_dir, node_id)

    def resume(self, node_id: int) -> None:
        local_kafka.resume_node(self.state_dir, node_id)

    def wipe(self, node_id: int) -> None:
        local_kafka.node(self.state_dir, node_id).wipe_data()

    async def restart(self, node_id: int) -> None:
        await asyncio.to_thread(local_kafka.restart_node, self.state_dir, node_id)

    async def all_in_sync(self, topics: Sequence[str]) -> bool:
        """Every partition led and replicated on all three nodes (a restarted one caught up)."""
        states = await admin.replicas(self.bootstrap, list(topics))
        return bool(states) and all(leader >= 0 and isr == NODES for leader, isr in states.values())

    async def heal(self, topics: Sequence[str]) -> None:
        """Bring every node back (resumed, restarted) and wait until all are in sync."""
        for node_id in NODES:
            self.resume(node_id)
            if local_kafka.node(self.state_dir, node_id).running_pid() is None:
                await self.restart(node_id)
        deadline = time.monotonic() + 120
        while not await self.all_in_sync(topics):
            if time.monotonic() > deadline:
                raise AssertionError(f"the cluster did not heal: {topics}")
            await asyncio.sleep(0.5)
