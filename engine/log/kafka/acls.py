"""Which principal may do what on a deployment's topics: one role per kind of process. Pure.

Each role gets exactly what its process does (docs/kafka-security.md has the table and why):
- worker: consumes commands (and forwards them between partitions), appends run events,
  checkpoints, the run index, notices and dead letters in transactions of its own ids, reads
  the partition map; registers the agents it serves;
- projector: reads the runs topic in its own group (its positions live in PostgreSQL; the
  adapter's group members still hold per-partition transactional ids, never used to write);
- publisher: writes commands, reads the outcomes on the approvals topic and the agents
  workers serve (a start is checked against them);
- reader: reads runs, approvals, dead letters and agents (replay tooling, verify), no group.
Every role may describe the deployment's topics (their metadata): a process checks at start
that they exist and are co-partitioned. Kafka's READ and WRITE imply DESCRIBE.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.log.port import Topics

__all__ = ["ROLES", "Acl", "role_acls"]

ROLES = ("worker", "projector", "publisher", "reader")


@dataclass(frozen=True, slots=True)
class Acl:
    """Allow `principal` to `operation` on a resource, from any host."""

    principal: str
    resource: str  # topic | group | transactional_id | cluster
    name: str
    operation: str  # read | write | describe | describe_configs | ...
    pattern: str = "literal"  # literal | prefixed

    def as_tuple(self) -> tuple[str, str, str, str, str]:
        return (self.principal, self.resource, self.name, self.pattern, self.operation)


def role_acls(
    topics: Topics,
    *,
    worker_group: str,
    projector_group: str,
    principals: dict[str, str] | None = None,
) -> dict[str, list[Acl]]:
    """Each role's ACLs; `principals` maps a role to its principal (default `User:<role>`)."""
    named = {role: f"User:{role}" for role in ROLES} | (principals or {})

    def allow(
        role: str, resource: str, name: str, *operations: str, prefixed: bool = False
    ) -> list[Acl]:
        pattern = "prefixed" if prefixed else "literal"
        return [Acl(named[role], resource, name, op, pattern) for op in operations]

    every_topic = f"{topics.prefix}."
    return {
        "worker": [
            *allow("worker", "topic", topics.commands, "read", "write"),
            *allow("worker", "topic", topics.runs, "read", "write"),
            *allow("worker", "topic", topics.checkpoints, "read", "write"),
            *allow("worker", "topic", topics.index, "read", "write"),
            # Only workers write anchors; they read back a partition's last one on takeover.
            *allow("worker", "topic", topics.anchors, "read", "write"),
            *allow("worker", "topic", topics.approvals, "write"),
            *allow("worker", "topic", topics.dlq, "write"),
            *allow("worker", "topic", topics.routing, "read"),
            *allow("worker", "topic", topics.agents, "write"),
            *allow("worker", "topic", every_topic, "describe", "describe_configs", prefixed=True),
            *allow("worker", "group", worker_group, "read"),
            *allow("worker", "transactional_id", f"{worker_group}.", "write", prefixed=True),
        ],
        "projector": [
            *allow("projector", "topic", topics.runs, "read"),
            *allow("projector", "topic", topics.routing, "read"),
            *allow(
                "projector", "topic", every_topic, "describe", "describe_configs", prefixed=True
            ),
            *allow("projector", "group", projector_group, "read"),
            *allow("projector", "transactional_id", f"{projector_group}.", "write", prefixed=True),
        ],
        "publisher": [
            *allow("publisher", "topic", topics.commands, "write"),
            *allow("publisher", "topic", topics.approvals, "read"),
            *allow("publisher", "topic", topics.agents, "read"),
            *allow("publisher", "topic", every_topic, "describe", prefixed=True),
        ],
        "reader": [
            *allow("reader", "topic", topics.runs, "read"),
            *allow("reader", "topic", topics.anchors, "read"),  # `countersign verify`
            *allow("reader", "topic", topics.approvals, "read"),
            *allow("reader", "topic", topics.dlq, "read"),
            *allow("reader", "topic", topics.agents, "read"),
            *allow("reader", "topic", every_topic, "describe", prefixed=True),
        ],
    }
