"""A real single-node Apache Kafka broker for tests and local use.

The broker runs in KRaft combined mode (one JVM is both broker and controller) and is
fetched from Maven Central with ``mvn``: ``org.apache.kafka:kafka_2.13`` plus a reload4j
logging backend. The jars are cached under ``$COUNTERSIGN_CACHE_DIR`` (default
``~/.cache/countersign``) in ``kafka-<version>/libs``; a marker file is written only after a
complete download, so an interrupted one is retried.

Everything a broker owns lives in its *state dir*: ``server.properties``,
``log4j.properties``, ``server.log`` (log4j), ``kafka.out`` (the JVM's stdout/stderr),
``data/`` (the log dirs), ``ports.json`` (the broker and controller ports, reused on
restart so clients keep their bootstrap address), ``kafka.pid`` and ``bootstrap``.

The broker is a detached process (its own session): it outlives the Python process that
started it until :func:`stop` is called. Everything binds to 127.0.0.1 only.

Errors (all :class:`LocalKafkaError`; each message says what to do):
- :class:`ToolMissingError` — ``java`` or ``mvn`` is not installed;
- :class:`JarFetchError` — ``mvn`` could not fetch the jars;
- :class:`BrokerStartError` — the broker exited or was not ready in time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from engine.log.kafka import admin as kafka_admin
from engine.log.kafka.plan import DEVELOPMENT_RACK

__all__ = [
    "KAFKA_VERSION",
    "BrokerStartError",
    "JarFetchError",
    "LocalKafka",
    "LocalKafkaError",
    "ToolMissingError",
    "cache_dir",
    "ensure_jars",
    "start",
    "status",
    "stop",
    "wait_until_ready",
]

KAFKA_VERSION = "3.9.1"
SCALA_VERSION = "2.13"
_ARTIFACTS = (
    ("org.apache.kafka", f"kafka_{SCALA_VERSION}", KAFKA_VERSION),
    ("org.slf4j", "slf4j-reload4j", "1.7.36"),
    ("ch.qos.reload4j", "reload4j", "1.2.25"),
)
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
_MARKER = ".complete"
_HEAP = "-Xmx512m"
_LOG_FILES = ("kafka.out", "server.log")
_LOG_TAIL_LINES = 20
_LOG_ERROR_LINES = 12
_ERROR_LINE = re.compile(r"^\[[^]]+\] (ERROR|FATAL) |^Caused by: |^Exception in thread ")

log = structlog.get_logger(__name__)
_T = TypeVar("_T")


class LocalKafkaError(Exception):
    """The local broker could not be provided; the message says what to do."""


class ToolMissingError(LocalKafkaError):
    """A required program (java, mvn) is not on PATH."""


class JarFetchError(LocalKafkaError):
    """Maven could not fetch the Kafka jars."""


class BrokerStartError(LocalKafkaError):
    """The broker process exited during startup or was not ready in time."""


@dataclass(frozen=True, kw_only=True)
class LocalKafka:
    """A running local broker."""

    bootstrap: str
    pid: int
    state_dir: Path
    log_path: Path


# ---------------------------------------------------------------------------------------
# jars


def cache_dir() -> Path:
    """``$COUNTERSIGN_CACHE_DIR`` or ``~/.cache/countersign``."""
    configured = os.environ.get("COUNTERSIGN_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "countersign"


def ensure_jars() -> Path:
    """Return the directory holding the broker's jars, fetching them with Maven if needed."""
    root = cache_dir() / f"kafka-{KAFKA_VERSION}"
    libs = root / "libs"
    if (root / _MARKER).exists():
        return libs
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / ".lock"):
        if (root / _MARKER).exists():  # another process fetched them while we waited
            return libs
        _fetch_jars(root, libs)
    return libs


def _fetch_jars(root: Path, libs: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ToolMissingError("mvn not found: install Maven 3.8+ (it fetches the Kafka jars)")
    pom = root / "pom.xml"
    pom.write_text(_pom_xml())
    staging = root / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(libs, ignore_errors=True)
    log.info("kafka_jars_fetching", version=KAFKA_VERSION, into=str(libs))
    began = time.monotonic()
    command = [
        mvn, "-q", "-B", "-f", str(pom),
        f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    jars = sorted(staging.glob("*.jar")) if staging.is_dir() else []
    if result.returncode != 0 or not jars:
        output = _tail((result.stdout + result.stderr).splitlines())
        raise JarFetchError(
            f"mvn failed (exit {result.returncode}) fetching Kafka {KAFKA_VERSION}; check network "
            f"access to Maven Central and ~/.m2/settings.xml, then retry:\n{output}"
        )
    staging.rename(libs)
    (root / _MARKER).write_text(f"{len(jars)} jars\n")
    log.info("kafka_jars_fetched", jars=len(jars), seconds=round(time.monotonic() - began, 1))


def _pom_xml() -> str:
    dependencies = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in _ARTIFACTS
    )
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>countersign</groupId>
  <artifactId>local-kafka</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------
# broker lifecycle


async def wait_until_ready(bootstrap: str, timeout_s: float) -> None:
    """Wait until the broker answers a metadata request; ``TimeoutError`` otherwise."""
    await kafka_admin.wait_until_ready(bootstrap, timeout_s)


def status(state_dir: Path) -> LocalKafka | None:
    """The broker of ``state_dir`` if its process is running (ready or not), else ``None``."""
    state_dir = state_dir.resolve()
    pid = _read_pid(state_dir)
    if pid is None or not _is_our_broker(pid, state_dir):
        return None
    return _describe(state_dir, pid)


def start(state_dir: Path, *, partitions: int = 4, timeout_s: float = 90.0) -> LocalKafka:
    """Start (or return the already running) broker of ``state_dir`` and wait until ready.

    A restarted broker keeps its data and its ports; ``partitions`` (the default for new
    topics) applies from the next start. Concurrent callers are serialised by a lock file
    in ``state_dir``. This function blocks; from async code call it through
    ``asyncio.to_thread``.
    """
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(state_dir / ".lock"):
        return _start_locked(state_dir, partitions=partitions, timeout_s=timeout_s)


def _start_locked(state_dir: Path, *, partitions: int, timeout_s: float) -> LocalKafka:
    running = status(state_dir)
    if running is not None:
        _run_blocking(wait_until_ready(running.bootstrap, timeout_s))
        return running
    java = shutil.which("java")
    if java is None:
        raise ToolMissingError("java not found: install Java 17 (the Kafka broker runs on it)")
    libs = ensure_jars()
    port, controller_port = _ports(state_dir)
    _write_config(state_dir, port=port, controller_port=controller_port, partitions=partitions)
    classpath = f"{libs}/*"
    _format_storage(java, classpath, state_dir)
    began = time.monotonic()
    log_sizes = _log_sizes(state_dir)
    process = _launch(java, classpath, state_dir)
    broker = _describe(state_dir, process.pid)
    log.info(
        "kafka_starting", bootstrap=broker.bootstrap, pid=process.pid, state_dir=str(state_dir)
    )
    try:
        _run_blocking(_await_startup(process, broker, timeout_s, log_sizes))
    except BaseException:
        _terminate(process.pid, timeout_s=5.0)
        _pid_path(state_dir).unlink(missing_ok=True)
        raise
    log.info("kafka_ready", bootstrap=broker.bootstrap, seconds=round(time.monotonic() - began, 1))
    return broker


def stop(state_dir: Path, *, timeout_s: float = 20.0) -> bool:
    """Stop the broker of ``state_dir`` (SIGTERM, then SIGKILL); ``True`` if one was running."""
    state_dir = state_dir.resolve()
    if _read_pid(state_dir) is None:
        return False
    with _file_lock(state_dir / ".lock"):
        pid = _read_pid(state_dir)
        running = pid is not None and _is_our_broker(pid, state_dir)
        if running and pid is not None:
            _terminate(pid, timeout_s=timeout_s)
            log.info("kafka_stopped", pid=pid, state_dir=str(state_dir))
        _pid_path(state_dir).unlink(missing_ok=True)  # gone, or a stale file
    return running


def _describe(state_dir: Path, pid: int) -> LocalKafka:
    port, _ = _ports(state_dir)
    return LocalKafka(
        bootstrap=f"127.0.0.1:{port}",
        pid=pid,
        state_dir=state_dir,
        log_path=state_dir / "server.log",
    )


def _ports(state_dir: Path) -> tuple[int, int]:
    """The stored (broker, controller) ports, or two fresh ones, stored for restarts."""
    path = state_dir / "ports.json"
    if path.exists():
        stored = json.loads(path.read_text())
        return int(stored["broker"]), int(stored["controller"])
    with socket.socket() as first, socket.socket() as second:
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        ports = (first.getsockname()[1], second.getsockname()[1])
    path.write_text(json.dumps({"broker": ports[0], "controller": ports[1]}))
    return ports


def _write_config(state_dir: Path, *, port: int, controller_port: int, partitions: int) -> None:
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "log.dirs": str(state_dir / "data"),
        "num.partitions": str(partitions),
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "group.initial.rebalance.delay.ms": "0",
        # Lets tests notice a killed worker within seconds (the broker's default floor is 6s).
        "group.min.session.timeout.ms": "1000",
        "auto.create.topics.enable": "false",
        # Says "development broker" to `topics check`: one replica is allowed here (logged).
        "broker.rack": DEVELOPMENT_RACK,
    }
    (state_dir / "server.properties").write_text(
        "".join(f"{key}={value}\n" for key, value in properties.items())
    )
    log4j = {
        "log4j.rootLogger": "INFO, file",
        "log4j.appender.file": "org.apache.log4j.RollingFileAppender",
        "log4j.appender.file.File": str(state_dir / "server.log"),
        "log4j.appender.file.MaxFileSize": "10MB",
        "log4j.appender.file.MaxBackupIndex": "2",
        "log4j.appender.file.layout": "org.apache.log4j.PatternLayout",
        "log4j.appender.file.layout.ConversionPattern": "[%d] %p %m (%c)%n",
        "log4j.logger.kafka.request.logger": "WARN",
        "log4j.logger.state.change.logger": "WARN",
        "log4j.logger.org.apache.kafka.clients": "WARN",
    }
    (state_dir / "log4j.properties").write_text(
        "".join(f"{key}={value}\n" for key, value in log4j.items())
    )


def _format_storage(java: str, classpath: str, state_dir: Path) -> None:
    if (state_dir / "data" / "meta.properties").exists():
        return
    cluster_id = _cluster_id()
    command = [
        java, "-cp", classpath, f"-Dlog4j.configuration=file:{state_dir / 'log4j.properties'}",
        "kafka.tools.StorageTool", "format",
        "-t", cluster_id, "-c", str(state_dir / "server.properties"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = _tail((result.stdout + result.stderr).splitlines())
        raise BrokerStartError(
            f"formatting Kafka storage in {state_dir / 'data'} failed (exit {result.returncode}); "
            f"delete that directory to start afresh:\n{output}"
        )
    log.info("kafka_storage_formatted", cluster_id=cluster_id, state_dir=str(state_dir))


def _cluster_id() -> str:
    """A random cluster id as Kafka makes them: 16 bytes, URL-safe base64, no padding.

    Like Kafka's ``Uuid.randomUuid`` it never starts with "-", which the command line
    would read as an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _launch(java: str, classpath: str, state_dir: Path) -> subprocess.Popen[bytes]:
    command = [
        java, _HEAP, "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{state_dir / 'log4j.properties'}",
        f"-Dkafka.logs.dir={state_dir}",
        "-cp", classpath, "kafka.Kafka", str(state_dir / "server.properties"),
    ]  # fmt: skip
    with (state_dir / "kafka.out").open("ab") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=state_dir,
            start_new_session=True,
        )
    _pid_path(state_dir).write_text(f"{process.pid}\n")
    port, _ = _ports(state_dir)
    (state_dir / "bootstrap").write_text(f"127.0.0.1:{port}\n")
    return process


async def _await_startup(
    process: subprocess.Popen[bytes],
    broker: LocalKafka,
    timeout_s: float,
    log_sizes: Mapping[str, int],
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        code = process.poll()
        if code is not None:
            logs = _logs_tail(broker.state_dir, log_sizes)
            hint = (
                f"; a stored port is taken: stop what listens on it or delete "
                f"{broker.state_dir / 'ports.json'} to pick new ports"
                if "Address already in use" in logs
                else ""
            )
            raise BrokerStartError(
                f"the Kafka broker exited with code {code} during startup{hint}; "
                f"see {broker.state_dir}:\n{logs}"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerStartError(
                f"the Kafka broker at {broker.bootstrap} was not ready after {timeout_s:.0f}s; "
                f"see {broker.state_dir}:\n{_logs_tail(broker.state_dir, log_sizes)}"
            )
        try:
            await wait_until_ready(broker.bootstrap, min(2.0, remaining))
        except TimeoutError:
            continue
        return


def _terminate(pid: int, *, timeout_s: float) -> None:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL; returns once the process is gone."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _is_alive(pid):
                return
            time.sleep(0.1)
        if sig == signal.SIGTERM:
            log.warning(
                "kafka_kill", pid=pid, reason=f"still running {timeout_s:.0f}s after SIGTERM"
            )
    raise LocalKafkaError(f"Kafka broker pid {pid} survived SIGKILL; stop it by hand")


def _is_alive(pid: int) -> bool:
    """Whether ``pid`` runs; reaps it if it is our exited child, treats zombies as gone."""
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state field follows the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _is_our_broker(pid: int, state_dir: Path) -> bool:
    if not _is_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    config = str(state_dir / "server.properties").encode()
    return b"kafka.Kafka" in argv and config in argv


def _pid_path(state_dir: Path) -> Path:
    return state_dir / "kafka.pid"


def _read_pid(state_dir: Path) -> int | None:
    try:
        return int(_pid_path(state_dir).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _log_sizes(state_dir: Path) -> dict[str, int]:
    """Where each log file ends now, so a report shows only what a new process wrote."""
    return {
        name: (state_dir / name).stat().st_size if (state_dir / name).exists() else 0
        for name in _LOG_FILES
    }


def _logs_tail(state_dir: Path, since: Mapping[str, int]) -> str:
    """The errors (with their causes) and the last lines each log file got after ``since``."""
    parts = []
    for name in _LOG_FILES:
        path = state_dir / name
        if not path.exists():
            continue
        with path.open("rb") as handle:
            handle.seek(since.get(name, 0))
            lines = handle.read().decode(errors="replace").splitlines()
        errors = [line for line in lines if _ERROR_LINE.search(line)]
        if errors:
            parts.append(f"--- {name}: errors ---\n" + "\n".join(errors[:_LOG_ERROR_LINES]))
        if lines:
            parts.append(f"--- {name}: last lines ---\n{_tail(lines)}")
    return "\n".join(parts) or "(nothing logged)"


def _tail(lines: list[str]) -> str:
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def _run_blocking(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` to completion on a private loop in a worker thread.

    A thread keeps this usable from sync code and from inside a running event loop
    (which it blocks, like any sync call) without touching that loop's state.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-kafka") as pool:
        return pool.submit(asyncio.run, coroutine).result()
