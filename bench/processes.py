"""Countersign OS processes for the benchmarks (I/O): started with a probe port each, waited
for until every one is ready, metered in CPU seconds (/proc), and ended by their pid."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tally import ProcTimes, Usage, tree_cpu_s, tree_queued_s  # noqa: E402
from countersign.cli_probe import fetch  # noqa: E402

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def kafka_env(bootstrap: str, prefix: str, partitions: int, **extra: str) -> dict[str, str]:
    """What a worker or projector process needs to find the benchmark's topics."""
    return {
        **os.environ,
        "COUNTERSIGN_LOG": "kafka",
        "COUNTERSIGN_KAFKA_BOOTSTRAP": bootstrap,
        "COUNTERSIGN_TOPIC_PREFIX": prefix,
        "COUNTERSIGN_PARTITIONS": str(partitions),
        "COUNTERSIGN_LOG_LEVEL": os.environ.get("BENCH_WORKER_LEVEL", "warning"),
        **extra,
    }


class Fleet:
    """`count` processes of one `countersign` command, each with its own probe port."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str], count: int) -> None:
        self.ports = [free_port() for _ in range(count)]
        self.processes: list[subprocess.Popen[bytes]] = []
        cli = [sys.executable, "-m", "countersign.cli", *command, "--health-port"]
        with open(os.environ.get("BENCH_WORKER_LOG", os.devnull), "ab") as log:
            for port in self.ports:
                self.processes.append(
                    subprocess.Popen([*cli, str(port)], cwd=ROOT, env=dict(env), stderr=log)
                )

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    async def ready(self, limit_s: float = 120.0) -> float:
        """Seconds until every process answers ready at once (for a worker: in the group,
        partitions assigned and restored); a process that exits is an error."""
        started = time.monotonic()
        while True:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"process {process.pid} exited ({process.returncode})")
            answers = await asyncio.gather(*(fetch("127.0.0.1", p, "/readyz") for p in self.ports))
            if all(status == 200 for status, _ in answers):
                return time.monotonic() - started
            if time.monotonic() - started > limit_s:
                reasons = [body.decode(errors="replace").strip() for _, body in answers]
                raise TimeoutError(f"not all ready after {limit_s:.0f} s: {reasons}")
            await asyncio.sleep(0.2)

    def end(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def proc_snapshot() -> dict[int, ProcTimes]:
    """Every process's CPU times now (Linux /proc; processes that vanish meanwhile are
    left out)."""
    out: dict[int, ProcTimes] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
        ppid, utime, stime, cutime, cstime = (int(fields[i]) for i in (1, 11, 12, 13, 14))
        out[int(entry)] = ProcTimes(
            ppid, (utime + stime) * _TICK_S, (cutime + cstime) * _TICK_S, _queued_s(entry)
        )
    return out


def _queued_s(pid: str) -> float:
    """Run-queue wait of the process's live threads (schedstat's second field, ns)."""
    total = 0
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[1])
    return total / 1e9


class CpuMeter:
    """CPU seconds used by named process trees between `start` and `stop`, and by this
    process itself (not its children) as "bench"."""

    def __init__(self, roots: Mapping[str, Sequence[int]]) -> None:
        self.roots = {name: list(pids) for name, pids in roots.items() if pids}
        self._before: dict[str, Usage] = {}

    def _now(self) -> dict[str, Usage]:
        snapshot = proc_snapshot()
        found = {
            name: Usage(
                sum(tree_cpu_s(snapshot, pid) for pid in pids),
                sum(tree_queued_s(snapshot, pid) for pid in pids),
            )
            for name, pids in self.roots.items()
        }
        mine = snapshot.get(os.getpid())
        if mine is not None:
            found["bench"] = Usage(mine.own_s, mine.queued_s)
        return found

    def start(self) -> None:
        self._before = self._now()

    def stop(self) -> dict[str, Usage]:
        after = self._now()
        zero = Usage(0.0, 0.0)
        return {
            name: Usage(
                u.cpu_s - self._before.get(name, zero).cpu_s,
                u.queued_s - self._before.get(name, zero).queued_s,
            )
            for name, u in after.items()
        }


def machine_line() -> str:
    """How busy the machine is now (other work shares its cores)."""
    one, five, _ = os.getloadavg()
    return f"machine: {os.cpu_count()} cores, load average {one:.1f} (1 min), {five:.1f} (5 min)"


def postmaster_pid(data_dir: Path) -> int | None:
    """The embedded PostgreSQL's server process (its backends are its children)."""
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
