"""`countersign` subcommands as real OS processes, for tests; ended only by their own PIDs."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
