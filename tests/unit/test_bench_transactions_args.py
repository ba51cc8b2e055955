"""bench/transactions.py refuses what it cannot honour before it starts or reaches a broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench(*args: str, bootstrap: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    if bootstrap:
        env["COUNTERSIGN_KAFKA_BOOTSTRAP"] = bootstrap
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "transactions.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("setting", ["x y=1", "=1", "log.retention.ms=", "a:b=1", "no-separator"])
def test_a_broker_setting_that_is_not_key_value_is_refused(setting: str) -> None:
    done = _bench("--broker-setting", setting)
    assert done.returncode == 2
    assert "--broker-setting takes KEY=VALUE" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--broker-setting", "add.partitions.to.txn.retry.backoff.ms=1"),
        ("--kafka-version", "4.1.1"),
    ],
)
def test_settings_for_its_own_broker_are_refused_with_a_broker_of_yours(
    args: tuple[str, str],
) -> None:
    done = _bench(*args, bootstrap="127.0.0.1:1")  # never reached: refused before
    assert done.returncode == 1
    assert "unset COUNTERSIGN_KAFKA_BOOTSTRAP" in done.stderr
