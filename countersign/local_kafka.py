"""Real Apache Kafka on 127.0.0.1 for tests and local use: one node, or a cluster (I/O).

Each node is a KRaft JVM that is both broker and controller (`countersign.local_kafka_node`),
run from jars fetched once from Maven Central (`countersign.local_kafka_jars`). A state dir
holds one deployment:
- one node (the default): the node's files are the state dir itself; topics need one replica
  and the broker says it is a development broker (`broker.rack`), so `topics check` allows it;
- `brokers=3`: three combined nodes in `node-1/`..`node-3/`, one controller quorum of three,
  Kafka's own topics at RF 3 / min ISR 2; failure detection tuned for tests (a broker is
  fenced after 6 s without heartbeat, a silent follower leaves the ISR after 10 s);
- `secure=True`: SASL_SSL (SCRAM-SHA-512), mutual TLS and the StandardAuthorizer
  (`countersign.local_kafka_secure`); `grant` gives each role its ACLs.
`cluster.json` records the shape, so a restart brings back the same cluster on the same
ports. Every process is detached and stopped by its pid (`stop`), never by name.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from countersign.atomic_write import write_atomically
from countersign.local_kafka_jars import (
    KAFKA_VERSION,
    BrokerStartError,
    JarFetchError,
    LocalKafkaError,
    ToolMissingError,
    cache_dir,
    ensure_jars,
)
from countersign.local_kafka_node import Node, cluster_id, unreadable
from countersign.local_kafka_secure import ADMIN, SecureMaterial
from engine.file_lock import file_lock
from engine.log.kafka import admin as kafka_admin
from engine.log.kafka.acls import role_acls
from engine.log.kafka.connection import Connection
from engine.log.kafka.plan import DEVELOPMENT_RACK, Replication, broker_settings
from engine.log.port import Topics

__all__ = [
    "KAFKA_VERSION",
    "BrokerStartError",
    "JarFetchError",
    "LocalKafka",
    "LocalKafkaError",
    "ToolMissingError",
    "cache_dir",
    "checked_settings",
    "ensure_jars",
    "grant",
    "node",
    "pause_node",
    "restart_node",
    "resume_node",
    "start",
    "status",
    "stop",
    "wait_until_ready",
]

log = structlog.get_logger(__name__)
_T = TypeVar("_T")
_FAST_FAILOVER = {
    "broker.session.timeout.ms": "6000",
    "broker.heartbeat.interval.ms": "1000",
    "replica.lag.time.max.ms": "10000",
}


@dataclass(frozen=True, kw_only=True)
class LocalKafka:
    """A running local broker or cluster."""

    bootstrap: str
    pid: int
    state_dir: Path
    log_path: Path
    pids: tuple[int, ...] = ()
    secure: bool = False

    @property
    def material(self) -> SecureMaterial | None:
        return SecureMaterial(self.state_dir / "secure") if self.secure else None

    def connection(self, user: str = ADMIN, *, mtls: bool = False) -> Connection:
        """How `user` (a role, or the admin) reaches this cluster."""
        material = self.material
        if material is None:
            return Connection(self.bootstrap)
        bootstrap = self.mtls_bootstrap if mtls else self.bootstrap
        return Connection(bootstrap, material.security(user, mtls=mtls))

    @property
    def mtls_bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.internal_port}" for n in _nodes(self.state_dir))


@dataclass(frozen=True)
class _Shape:
    brokers: int = 1
    secure: bool = False
    cluster_id: str | None = None
    version: str = KAFKA_VERSION

    @classmethod
    def load(cls, state_dir: Path) -> _Shape | None:
        path = state_dir / "cluster.json"
        try:
            stored = json.loads(path.read_text())
            version = str(stored.get("version", KAFKA_VERSION))
            return cls(
                int(stored["brokers"]), bool(stored["secure"]), str(stored["cluster_id"]), version
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise unreadable(path, exc) from exc

    def store(self, state_dir: Path) -> None:
        shape = {
            "brokers": self.brokers,
            "secure": self.secure,
            "cluster_id": self.cluster_id,
            "version": self.version,
        }
        write_atomically(state_dir / "cluster.json", json.dumps(shape).encode())


async def wait_until_ready(target: str | Connection, timeout_s: float, *, brokers: int = 1) -> None:
    """Wait until `brokers` brokers answer a metadata request; ``TimeoutError`` otherwise."""
    await kafka_admin.wait_until_ready(target, timeout_s, brokers=brokers)


def status(state_dir: Path) -> LocalKafka | None:
    """The cluster of ``state_dir`` if any of its nodes runs (ready or not), else ``None``."""
    state_dir = state_dir.resolve()
    shape = _Shape.load(state_dir) or _Shape()
    nodes = _set_up_nodes(state_dir, shape)
    pids = tuple(pid for pid in (n.running_pid() for n in nodes) if pid is not None)
    if not pids:
        return None
    return _describe(state_dir, shape, nodes, pids)


def start(
    state_dir: Path,
    *,
    partitions: int = 4,
    brokers: int = 1,
    secure: bool = False,
    timeout_s: float = 90.0,
    version: str = KAFKA_VERSION,
    settings: Mapping[str, str] | None = None,
) -> LocalKafka:
    """Start (or return the already running) cluster of ``state_dir``; wait until ready.

    A restarted cluster keeps its data and its ports; ``partitions`` (the default for new
    topics) applies from the next start. Concurrent callers are serialised by a lock file
    in ``state_dir``. This function blocks; from async code call it through
    ``asyncio.to_thread``. ``version``: Kafka's, for benchmarks against another release
    (the state dir keeps it). ``settings``: broker settings over ours, for nodes this call
    starts (benchmarks of a broker setting); not kept for later starts.
    """
    extra = checked_settings(settings or {})
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(state_dir / ".lock"):
        shape = _shape_for(state_dir, brokers, secure, version)
        return _start_locked(state_dir, shape, partitions, timeout_s, extra)


def checked_settings(settings: Mapping[str, str]) -> dict[str, str]:
    """Settings that can only be what they say in server.properties: one line each, a key
    with no separator, a value."""
    for key, value in settings.items():
        if not key or not value or any(c in key for c in "=:# \t") or "\n" in key + value:
            raise LocalKafkaError(f"not a broker setting: {key!r}={value!r}")
    return dict(settings)


def _shape_for(state_dir: Path, brokers: int, secure: bool, version: str) -> _Shape:
    stored = _Shape.load(state_dir)
    if stored is None:
        legacy = (state_dir / "data" / "meta.properties").exists()
        if legacy and (brokers, secure, version) != (1, False, KAFKA_VERSION):
            raise LocalKafkaError(
                f"{state_dir} holds a single plain broker: use another state dir (or "
                "`kafka down` and delete it) for a cluster or a secure broker"
            )
        shape = _Shape(brokers, secure, cluster_id(), version)
        shape.store(state_dir)
        return shape
    if stored.version != version:
        raise LocalKafkaError(
            f"{state_dir} holds a Kafka {stored.version} cluster: start it with that version, "
            f"or `kafka down` and delete {state_dir}"
        )
    if (stored.brokers, stored.secure) != (brokers, secure):
        raise LocalKafkaError(
            f"{state_dir} holds a {stored.brokers}-broker {'secure ' if stored.secure else ''}"
            f"cluster: start it the same way, or `kafka down` and delete {state_dir}"
        )
    return stored


def _start_locked(
    state_dir: Path,
    shape: _Shape,
    partitions: int,
    timeout_s: float,
    settings: Mapping[str, str] | None = None,
) -> LocalKafka:
    java = shutil.which("java")
    if java is None:
        raise ToolMissingError("java not found: install Java 17 (the Kafka broker runs on it)")
    classpath = f"{ensure_jars(shape.version)}/*"
    material = SecureMaterial.create_once(state_dir / "secure") if shape.secure else None
    nodes = _nodes(state_dir, shape)
    voters = ",".join(n.voter for n in nodes)
    began = time.monotonic()
    launched = []
    for each in nodes:
        if each.running_pid() is not None:
            continue
        ours = _properties(each, voters, partitions, shape, material)
        each.write_config(ours | dict(settings or {}))
        assert shape.cluster_id is not None
        extra = material.scram_arguments() if material else ()
        each.format_storage(java, classpath, shape.cluster_id, extra)
        launched.append((each, each.log_sizes(), each.launch(java, classpath)))
    # A process just launched may not show its java command line yet: take its pid as given.
    started = {each.node_id: process.pid for each, _, process in launched}
    pids = tuple(started.get(n.node_id) or n.running_pid() or 0 for n in nodes)
    broker = _describe(state_dir, shape, nodes, pids)
    log.info("kafka_starting", bootstrap=broker.bootstrap, brokers=shape.brokers, pids=broker.pids)
    try:
        _run_blocking(_await_startup(broker, shape.brokers, launched, timeout_s))
    except BaseException:
        for each, _, _ in launched:
            each.stop(timeout_s=5.0)
        raise
    if material is not None:
        material.write_env_files(broker.bootstrap, broker.mtls_bootstrap)
    log.info("kafka_ready", bootstrap=broker.bootstrap, seconds=round(time.monotonic() - began, 1))
    return broker


def stop(state_dir: Path, *, timeout_s: float = 20.0) -> bool:
    """Stop every node of ``state_dir`` (SIGTERM, then SIGKILL); ``True`` if one was running."""
    state_dir = state_dir.resolve()
    if not state_dir.exists():
        return False
    with file_lock(state_dir / ".lock"):
        shape = _Shape.load(state_dir) or _Shape()
        nodes = _nodes(state_dir, shape)
        running = [each.running_pid() is not None for each in nodes]
        for each in nodes:  # all at once: a cluster's last node must not wait for a quorum
            each.signal(signal.SIGCONT)
            each.signal(signal.SIGTERM)
        for each in nodes:
            each.stop(timeout_s=timeout_s)
    return any(running)


def grant(broker: LocalKafka, topics: Topics, *, worker_group: str, projector_group: str) -> int:
    """Give each role (worker, projector, publisher, reader) its ACLs on `topics`."""
    acls = role_acls(topics, worker_group=worker_group, projector_group=projector_group)
    every = [acl for role in acls.values() for acl in role]
    return _run_blocking(kafka_admin.create_acls(broker.connection(ADMIN), every))


# -- single nodes, for failover tests -----------------------------------------------------------


def node(state_dir: Path, node_id: int) -> Node:
    """One node of the cluster (signal it, stop it, wipe its data; see `restart_node`)."""
    state_dir = state_dir.resolve()
    shape = _Shape.load(state_dir) or _Shape()
    return _nodes(state_dir, shape)[node_id - 1]


def restart_node(state_dir: Path, node_id: int, *, timeout_s: float = 90.0) -> int:
    """Start a stopped node again (same ports, same identity) and wait until every broker
    of the cluster is registered again; its new pid."""
    state_dir = state_dir.resolve()
    with file_lock(state_dir / ".lock"):
        shape = _Shape.load(state_dir) or _Shape()
        _start_locked(state_dir, shape, _partitions(state_dir), timeout_s)
    pid = node(state_dir, node_id).running_pid()
    if pid is None:
        raise BrokerStartError(f"node {node_id} of {state_dir} did not stay up")
    return pid


def pause_node(state_dir: Path, node_id: int) -> int | None:
    """SIGSTOP one node (a stalled JVM: it neither answers nor heartbeats)."""
    return node(state_dir, node_id).signal(signal.SIGSTOP)


def resume_node(state_dir: Path, node_id: int) -> int | None:
    return node(state_dir, node_id).signal(signal.SIGCONT)


def _partitions(state_dir: Path) -> int:
    properties = (node(state_dir, 1).dir / "server.properties").read_text().splitlines()
    found = [line.split("=", 1)[1] for line in properties if line.startswith("num.partitions=")]
    return int(found[0]) if found else 4


# -- internals ------------------------------------------------------------------------------------


def _nodes(state_dir: Path, shape: _Shape | None = None) -> list[Node]:
    shape = shape or _Shape.load(state_dir) or _Shape()
    if shape.brokers == 1:
        return [Node.load_or_create(1, state_dir, internal=shape.secure)]
    return [
        Node.load_or_create(i, state_dir / f"node-{i}", internal=shape.secure)
        for i in range(1, shape.brokers + 1)
    ]


def _set_up_nodes(state_dir: Path, shape: _Shape) -> list[Node]:
    """The nodes set up in `state_dir` so far, creating nothing (for `status`)."""
    if shape.brokers == 1:
        found = [Node.load(1, state_dir)]
    else:
        found = [Node.load(i, state_dir / f"node-{i}") for i in range(1, shape.brokers + 1)]
    return [each for each in found if each is not None]


def _describe(
    state_dir: Path, shape: _Shape, nodes: Sequence[Node], pids: tuple[int, ...]
) -> LocalKafka:
    return LocalKafka(
        bootstrap=",".join(n.bootstrap for n in nodes),
        pid=pids[0] if pids else 0,
        state_dir=state_dir,
        log_path=nodes[0].dir / "server.log",
        pids=pids,
        secure=shape.secure,
    )


def _properties(
    each: Node, voters: str, partitions: int, shape: _Shape, material: SecureMaterial | None
) -> dict[str, str]:
    replication = Replication.for_cluster(shape.brokers)
    properties = {
        "process.roles": "broker,controller",
        "node.id": str(each.node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{each.bootstrap},CONTROLLER://127.0.0.1:{each.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{each.bootstrap}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "log.dirs": str(each.data_dir),
        "num.partitions": str(partitions),
        **broker_settings(replication),
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.num.partitions": "4",
        "group.initial.rebalance.delay.ms": "0",
        # Lets tests notice a killed worker within seconds (the broker's default floor is 6s).
        "group.min.session.timeout.ms": "1000",
    }
    if shape.brokers == 1:
        # Says "development broker" to `topics check`: one replica is allowed here (logged).
        properties["broker.rack"] = DEVELOPMENT_RACK
    else:
        properties |= _FAST_FAILOVER
    if material is not None:
        assert each.internal_port is not None
        properties |= material.broker_properties(
            each.client_port, each.internal_port, each.controller_port
        )
    return properties


async def _await_startup(
    broker: LocalKafka,
    brokers: int,
    launched: Sequence[tuple[Node, Mapping[str, int], Any]],
    timeout_s: float,
) -> None:
    deadline = time.monotonic() + timeout_s
    # Asked through the nodes just launched: they must answer, not only the old ones.
    admin = broker.connection(ADMIN)
    addresses = ",".join(each.bootstrap for each, _, _ in launched) or admin.bootstrap
    target = Connection(addresses, admin.security)
    while True:
        for each, sizes, process in launched:
            code = process.poll()
            if code is not None:
                logs = each.logs_tail(sizes)
                hint = (
                    f"; a stored port is taken: stop what listens on it or delete "
                    f"{each.dir / 'ports.json'} to pick new ports"
                    if "Address already in use" in logs
                    else ""
                )
                raise BrokerStartError(
                    f"Kafka node {each.node_id} exited with code {code} during startup{hint}; "
                    f"see {each.dir}:\n{logs}"
                )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            logs = "\n".join(each.logs_tail(sizes) for each, sizes, _ in launched)
            raise BrokerStartError(
                f"Kafka at {broker.bootstrap} was not ready after {timeout_s:.0f}s; "
                f"see {broker.state_dir}:\n{logs}"
            )
        try:
            await wait_until_ready(target, min(2.0, remaining), brokers=brokers)
            for each in _nodes(broker.state_dir):  # each node's metadata lists every broker
                node_target = Connection(each.bootstrap, admin.security)
                await wait_until_ready(node_target, min(2.0, remaining), brokers=brokers)
        except TimeoutError:
            continue
        return


def _run_blocking(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` to completion on a private loop in a worker thread.

    A thread keeps this usable from sync code and from inside a running event loop
    (which it blocks, like any sync call) without touching that loop's state.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-kafka") as pool:
        return pool.submit(asyncio.run, coroutine).result()
