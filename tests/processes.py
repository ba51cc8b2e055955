"""`countersign` subcommands as real OS processes, for tests; ended only by their own PIDs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli_env(prefix: str, home: Path, partitions: int, **extra: str) -> dict[str, str]:
    """This process's environment without its `COUNTERSIGN_*` settings, plus a test's own:
    topics under `prefix`, groups named for it, JSON logs, a home of its own; `extra` as
    `COUNTERSIGN_<NAME>` variables (`log="postgres"` sets COUNTERSIGN_LOG)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env |= {
        "COUNTERSIGN_TOPIC_PREFIX": prefix,
        "COUNTERSIGN_PARTITIONS": str(partitions),
        "COUNTERSIGN_WORKER_GROUP": f"{prefix}.workers",
        "COUNTERSIGN_PROJECTOR_GROUP": f"{prefix}.projector",
        "COUNTERSIGN_LOG_FORMAT": "json",
        "COUNTERSIGN_HOME": str(home),
    }
    return env | {f"COUNTERSIGN_{name.upper()}": value for name, value in extra.items()}


class Processes:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start `countersign ARGS...` in the background; its output goes to `<logs>/<name>.log`."""
        out = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "countersign.cli", *args],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.started.append(proc)
        return proc

    def run(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `countersign ARGS...` to completion (fed `stdin`) and return its output."""
        result = subprocess.run(
            [sys.executable, "-m", "countersign.cli", *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"countersign {' '.join(args)} failed:\n{result.stderr}")
        return result

    def log_lines(self, name: str) -> list[str]:
        path = self.logs / f"{name}.log"
        return path.read_text().splitlines() if path.exists() else []

    def end_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
