"""A local Apicurio Registry for tests and development (I/O): fetched once from Maven Central
into the cache (`~/.cache/countersign`, outside git), run on a 127.0.0.1 port, stopped by PID.

Apicurio Registry 3.0.9 runs on Java 17 with in-memory storage and serves the Confluent API
under `/apis/ccompat/v7`. Maven cannot resolve it (its parent POM is not on Maven Central), so
the archive is downloaded directly and checked against Maven Central's SHA-1.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import structlog

from countersign.local_kafka_jars import cache_dir
from engine.file_lock import file_lock

log = structlog.get_logger(__name__)

APICURIO_VERSION = "3.0.9"
_ARCHIVE = f"apicurio-registry-app-{APICURIO_VERSION}-all.tar.gz"
_URL = (
    "https://repo.maven.apache.org/maven2/io/apicurio/apicurio-registry-app/"
    f"{APICURIO_VERSION}/{_ARCHIVE}"
)
_RUNNER = f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar"
_MARKER = ".complete"
CONFLUENT_PATH = "/apis/ccompat/v7"


class RegistryFetchError(RuntimeError):
    """The registry could not be downloaded or unpacked."""


def ensure_registry() -> Path:
    """The directory holding the runner jar, downloading and unpacking it if needed."""
    root = cache_dir() / f"apicurio-{APICURIO_VERSION}"
    if (root / _MARKER).exists():
        return _runner_dir(root)
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / ".lock"):
        if not (root / _MARKER).exists():
            _fetch(root)
    return _runner_dir(root)


def _runner_dir(root: Path) -> Path:
    found = next(root.glob(f"**/{_RUNNER}"), None)
    if found is None:
        raise RegistryFetchError(f"{_RUNNER} not found under {root}: delete it and retry")
    return found.parent


def _fetch(root: Path) -> None:
    began = time.monotonic()
    archive = root / _ARCHIVE
    log.info("registry_fetching", url=_URL)
    try:
        with urllib.request.urlopen(_URL + ".sha1", timeout=60) as answer:
            expected = answer.read(200).decode().split()[0].strip()
        digest = hashlib.sha1(usedforsecurity=False)
        with urllib.request.urlopen(_URL, timeout=60) as answer, archive.open("wb") as out:
            while chunk := answer.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        raise RegistryFetchError(f"downloading {_URL}: {exc}") from exc
    if digest.hexdigest() != expected:
        archive.unlink()
        raise RegistryFetchError(f"{_ARCHIVE}: SHA-1 {digest.hexdigest()} is not {expected}")
    unpacked = root / "app"
    shutil.rmtree(unpacked, ignore_errors=True)
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    archive.unlink()
    (root / _MARKER).write_text(f"{APICURIO_VERSION}\n")
    log.info("registry_fetched", seconds=round(time.monotonic() - began, 1))


@dataclass
class LocalRegistry:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        """The Confluent-compatible API's base URL."""
        return f"http://127.0.0.1:{self.port}{CONFLUENT_PATH}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_registry(port: int, workdir: Path, *, ready_within_s: float = 180.0) -> LocalRegistry:
    """Start the registry on 127.0.0.1:`port`; returns once its Confluent API answers."""
    java = shutil.which("java")
    if java is None:
        raise RegistryFetchError("java not found: install Java 17 (the registry runs on it)")
    jar_dir = ensure_registry()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "registry.log"
    command = [
        java, "-Xmx384m",
        "-Dquarkus.http.host=127.0.0.1", f"-Dquarkus.http.port={port}",
        "-jar", str(jar_dir / _RUNNER),
    ]  # fmt: skip
    with log_path.open("wb") as out:
        process = subprocess.Popen(command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    registry = LocalRegistry(process, port, log_path)
    deadline = time.monotonic() + ready_within_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RegistryFetchError(f"the registry exited ({process.returncode}): {log_path}")
        try:
            with urllib.request.urlopen(f"{registry.url}/subjects", timeout=2) as answer:
                if answer.status == 200:
                    return registry
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)  # polling a server's readiness, not a test waiting on progress
    registry.stop()
    raise RegistryFetchError(f"the registry did not answer within {ready_within_s} s: {log_path}")
