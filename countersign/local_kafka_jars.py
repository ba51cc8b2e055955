"""The Kafka broker's jars, fetched once from Maven Central and cached (I/O).

``org.apache.kafka:kafka_2.13`` plus a reload4j logging backend, copied by ``mvn`` into
``$COUNTERSIGN_CACHE_DIR`` (default ``~/.cache/countersign``) ``/kafka-<version>/libs``; a
marker file is written only after a complete download, so an interrupted one is retried.

Errors (all :class:`LocalKafkaError`; each message says what to do):
- :class:`ToolMissingError` — ``java`` or ``mvn`` is not installed;
- :class:`JarFetchError` — ``mvn`` could not fetch the jars;
- :class:`BrokerStartError` — a broker exited or was not ready in time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import structlog

from engine.file_lock import file_lock

__all__ = [
    "KAFKA_VERSION",
    "BrokerStartError",
    "JarFetchError",
    "LocalKafkaError",
    "ToolMissingError",
    "cache_dir",
    "ensure_jars",
    "tail",
]

KAFKA_VERSION = "3.9.1"
SCALA_VERSION = "2.13"
_LOGGING = (  # the broker logs through slf4j 1.7 to log4j 1's API (reload4j)
    ("org.slf4j", "slf4j-reload4j", "1.7.36"),
    ("ch.qos.reload4j", "reload4j", "1.2.25"),
)
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
_MARKER = ".complete"
_VERSION = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){2}")
_TAIL_LINES = 20

log = structlog.get_logger("countersign.local_kafka")


class LocalKafkaError(Exception):
    """The local broker could not be provided; the message says what to do."""


class ToolMissingError(LocalKafkaError):
    """A required program (java, mvn) is not on PATH."""


class JarFetchError(LocalKafkaError):
    """Maven could not fetch the Kafka jars."""


class BrokerStartError(LocalKafkaError):
    """The broker process exited during startup or was not ready in time."""


def cache_dir() -> Path:
    """``$COUNTERSIGN_CACHE_DIR`` or ``~/.cache/countersign``."""
    configured = os.environ.get("COUNTERSIGN_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "countersign"


def ensure_jars(version: str = KAFKA_VERSION) -> Path:
    """Return the directory holding the broker's jars, fetching them with Maven if needed.

    Another ``version`` than the pinned one is for benchmarks against newer brokers."""
    if not _VERSION.fullmatch(version):  # it names a directory and goes into a pom
        raise LocalKafkaError(f"not a Kafka version: {version!r} (expected e.g. 4.1.1)")
    root = cache_dir() / f"kafka-{version}"
    libs = root / "libs"
    if (root / _MARKER).exists():
        return libs
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / ".lock"):
        if (root / _MARKER).exists():  # another process fetched them while we waited
            return libs
        _fetch_jars(root, libs, version)
    return libs


def _fetch_jars(root: Path, libs: Path, version: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ToolMissingError("mvn not found: install Maven 3.8+ (it fetches the Kafka jars)")
    pom = root / "pom.xml"
    pom.write_text(_pom_xml(version))
    staging = root / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(libs, ignore_errors=True)
    log.info("kafka_jars_fetching", version=version, into=str(libs))
    began = time.monotonic()
    command = [
        mvn, "-q", "-B", "-f", str(pom),
        f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    jars = sorted(staging.glob("*.jar")) if staging.is_dir() else []
    if result.returncode != 0 or not jars:
        output = tail((result.stdout + result.stderr).splitlines())
        raise JarFetchError(
            f"mvn failed (exit {result.returncode}) fetching Kafka {version}; check network "
            f"access to Maven Central and ~/.m2/settings.xml, then retry:\n{output}"
        )
    staging.rename(libs)
    (root / _MARKER).write_text(f"{len(jars)} jars\n")
    log.info("kafka_jars_fetched", jars=len(jars), seconds=round(time.monotonic() - began, 1))


def _pom_xml(version: str) -> str:
    # 4.x brings log4j 2 but no slf4j binding for it: reload4j serves every version.
    artifacts = (("org.apache.kafka", f"kafka_{SCALA_VERSION}", version), *_LOGGING)
    dependencies = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in artifacts
    )
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>countersign</groupId>
  <artifactId>local-kafka</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""


# ---------------------------------------------------------------------------------------
# broker lifecycle


def tail(lines: list[str]) -> str:
    return "\n".join(lines[-_TAIL_LINES:])
