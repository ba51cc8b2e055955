"""The worker OS process a benchmark starts, and the key its commands are signed with (I/O).

Workers on Kafka refuse unsigned commands (docs/signing.md): `signing_home` makes a home with
a key of its own, trusted by that home's trust file, and the worker started with
`COUNTERSIGN_HOME` set to it trusts what the benchmark signs with that key.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from engine.trust.jws import SigningKey
from engine.trust.keys import create_key

ROOT = Path(__file__).resolve().parents[1]


def signing_home(home: Path) -> SigningKey:
    """A key in `home` that a worker using `home` trusts (made once per benchmark)."""
    home.mkdir(parents=True, exist_ok=True)
    return create_key(home, issuer="bench").key


def worker_env(home: Path, settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without its `COUNTERSIGN_*` settings, plus `settings`
    (names without the `COUNTERSIGN_` prefix) and the signing home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env["COUNTERSIGN_HOME"] = str(home)
    env["COUNTERSIGN_LOG_LEVEL"] = os.environ.get("BENCH_WORKER_LEVEL", "warning")
    return env | {f"COUNTERSIGN_{name}": value for name, value in settings.items()}


def spawn_worker(
    apps: list[str], env: Mapping[str, str], log_path: str = os.devnull, *extra: str
) -> subprocess.Popen[bytes]:
    """`countersign worker --app APP...` in the background; its output goes to `log_path`."""
    args = [arg for app in apps for arg in ("--app", app)]
    with open(log_path, "wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "countersign.cli", "worker", *args, *extra],
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the one process we started (by its PID), SIGKILL if it does not stop."""
    if worker.poll() is None:
        worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
