"""One local Kafka node: a KRaft JVM that is both broker and controller (I/O).

Everything a node owns lives in its directory: ``server.properties``, ``log4j.properties``,
``server.log`` (log4j), ``kafka.out`` (the JVM's stdout/stderr), ``data/`` (log dirs and the
metadata log), ``ports.json`` (kept across restarts so clients keep their address),
``kafka.pid`` and ``bootstrap``. The process is detached (its own session) and binds to
127.0.0.1 only; it is stopped by its pid, never by name.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from countersign.atomic_write import write_atomically
from countersign.local_kafka_jars import BrokerStartError, LocalKafkaError, tail

__all__ = ["Node", "cluster_id", "free_ports", "unreadable"]

log = structlog.get_logger("countersign.local_kafka")

_HEAP = "-Xmx512m"
_LOG_FILES = ("kafka.out", "server.log")
_LOG_ERROR_LINES = 12
_ERROR_LINE = re.compile(r"^\[[^]]+\] (ERROR|FATAL) |^Caused by: |^Exception in thread ")
_KEPT_WHEN_WIPED = ("meta.properties", "bootstrap.checkpoint", "__cluster_metadata-0")


def unreadable(path: Path, error: Exception) -> LocalKafkaError:
    return LocalKafkaError(
        f"{path} is unreadable ({type(error).__name__}: {str(error)[:80]}): stop the local "
        f"broker's processes, then remove {path.parent} (a fresh one is set up)"
    )


@dataclass(frozen=True)
class Node:
    """A node's id, directory and ports (client, inter-broker, controller)."""

    node_id: int
    dir: Path
    client_port: int
    controller_port: int
    internal_port: int | None = None
    """A separate inter-broker listener (the secure broker's mutual-TLS one), if any."""

    @classmethod
    def load(cls, node_id: int, directory: Path) -> Node | None:
        """The node with its stored ports; None if it was never set up here. Reads only: a
        command that merely asks whether a broker runs (every CLI command does) writes
        nothing."""
        path = directory / "ports.json"
        try:
            stored = json.loads(path.read_text())
            return cls(
                node_id,
                directory,
                int(stored["broker"]),
                int(stored["controller"]),
                int(stored["internal"]) if "internal" in stored else None,
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:  # not written by us, or hand-edited
            raise unreadable(path, exc) from exc

    @classmethod
    def load_or_create(cls, node_id: int, directory: Path, *, internal: bool) -> Node:
        """The node with its stored ports, or fresh ones stored for restarts."""
        found = cls.load(node_id, directory)
        if found is not None:
            return found
        client, controller, extra = free_ports(3)
        stored = {"broker": client, "controller": controller}
        if internal:
            stored["internal"] = extra
        directory.mkdir(parents=True, exist_ok=True)
        write_atomically(directory / "ports.json", json.dumps(stored).encode())
        return cls(node_id, directory, client, controller, extra if internal else None)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def voter(self) -> str:
        return f"{self.node_id}@127.0.0.1:{self.controller_port}"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def pid_path(self) -> Path:
        return self.dir / "kafka.pid"

    # -- configuration ------------------------------------------------------------------------

    def write_config(self, properties: Mapping[str, str]) -> None:
        text = "".join(f"{key}={value}\n" for key, value in properties.items())
        (self.dir / "server.properties").write_text(text)
        log4j = {
            "log4j.rootLogger": "INFO, file",
            "log4j.appender.file": "org.apache.log4j.RollingFileAppender",
            "log4j.appender.file.File": str(self.dir / "server.log"),
            "log4j.appender.file.MaxFileSize": "10MB",
            "log4j.appender.file.MaxBackupIndex": "2",
            "log4j.appender.file.layout": "org.apache.log4j.PatternLayout",
            "log4j.appender.file.layout.ConversionPattern": "[%d] %p %m (%c)%n",
            "log4j.logger.kafka.request.logger": "WARN",
            "log4j.logger.state.change.logger": "WARN",
            "log4j.logger.org.apache.kafka.clients": "WARN",
        }
        (self.dir / "log4j.properties").write_text(
            "".join(f"{key}={value}\n" for key, value in log4j.items())
        )

    def format_storage(
        self, java: str, classpath: str, cluster: str, extra: Sequence[str] = ()
    ) -> None:
        """Format the data dir once (`extra`: e.g. the SCRAM users to create)."""
        if (self.data_dir / "meta.properties").exists():
            return
        command = [
            java, "-cp", classpath, f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
            "kafka.tools.StorageTool", "format",
            "-t", cluster, "-c", str(self.dir / "server.properties"), *extra,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = tail((result.stdout + result.stderr).splitlines())
            raise BrokerStartError(
                f"formatting Kafka storage in {self.data_dir} failed (exit {result.returncode}); "
                f"delete that directory to start afresh:\n{output}"
            )
        log.info("kafka_storage_formatted", cluster_id=cluster, node=self.node_id)

    def wipe_data(self) -> None:
        """Lose every partition's data (as a replaced disk would), keeping the node's identity
        and its copy of the cluster metadata: it must catch up from the other replicas."""
        if self.running_pid() is not None:
            raise LocalKafkaError(f"node {self.node_id} is running: stop it before wiping")
        for entry in self.data_dir.iterdir():
            if entry.name in _KEPT_WHEN_WIPED:
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    # -- the process ----------------------------------------------------------------------------

    def launch(self, java: str, classpath: str) -> subprocess.Popen[bytes]:
        command = [
            java, _HEAP, "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.dir}",
            "-cp", classpath, "kafka.Kafka", str(self.dir / "server.properties"),
        ]  # fmt: skip
        with (self.dir / "kafka.out").open("ab") as out:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
            )
        self.pid_path.write_text(f"{process.pid}\n")
        (self.dir / "bootstrap").write_text(f"{self.bootstrap}\n")
        return process

    def running_pid(self) -> int | None:
        """The node's pid if that process runs and is this node's broker."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _is_our_broker(pid, self.dir) else None

    def signal(self, signum: int) -> int | None:
        """Send `signum` to the node's process (SIGKILL, SIGSTOP, SIGCONT); its pid, if any."""
        pid = self.running_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        return pid

    def stop(self, *, timeout_s: float = 20.0) -> bool:
        """SIGTERM, then SIGKILL; `True` if it was running."""
        pid = self.running_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # a paused JVM cannot shut down
            terminate(pid, timeout_s=timeout_s)
            log.info("kafka_stopped", pid=pid, node=self.node_id)
        self.pid_path.unlink(missing_ok=True)  # gone, or a stale file
        return pid is not None

    # -- logs ---------------------------------------------------------------------------------

    def log_sizes(self) -> dict[str, int]:
        """Where each log file ends now, so a report shows only what a new process wrote."""
        return {
            name: (self.dir / name).stat().st_size if (self.dir / name).exists() else 0
            for name in _LOG_FILES
        }

    def logs_tail(self, since: Mapping[str, int]) -> str:
        """The errors (with their causes) and the last lines each log got after `since`."""
        parts = []
        for name in _LOG_FILES:
            path = self.dir / name
            if not path.exists():
                continue
            with path.open("rb") as handle:
                handle.seek(since.get(name, 0))
                lines = handle.read().decode(errors="replace").splitlines()
            errors = [line for line in lines if _ERROR_LINE.search(line)]
            if errors:
                parts.append(f"--- {name}: errors ---\n" + "\n".join(errors[:_LOG_ERROR_LINES]))
            if lines:
                parts.append(f"--- {name}: last lines ---\n{tail(lines)}")
        return "\n".join(parts) or "(nothing logged)"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def cluster_id() -> str:
    """A random cluster id as Kafka makes them: 16 bytes, URL-safe base64, no padding.

    Like Kafka's ``Uuid.randomUuid`` it never starts with "-", which the command line
    would read as an option.
    """
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not found.startswith("-"):
            return found


def terminate(pid: int, *, timeout_s: float) -> None:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL; returns once the process is gone."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not is_alive(pid):
                return
            time.sleep(0.1)
        if sig == signal.SIGTERM:
            log.warning(
                "kafka_kill", pid=pid, reason=f"still running {timeout_s:.0f}s after SIGTERM"
            )
    raise LocalKafkaError(f"Kafka broker pid {pid} survived SIGKILL; stop it by hand")


def is_alive(pid: int) -> bool:
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


def _is_our_broker(pid: int, directory: Path) -> bool:
    if not is_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    config = str(directory / "server.properties").encode()
    return b"kafka.Kafka" in argv and config in argv
