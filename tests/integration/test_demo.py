"""`countersign demo` runs non-interactively (as in CI) and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def _demo(pg_url: str, home: Path, *args: str) -> str:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("COUNTERSIGN_")  # nothing configured but the database
    }
    env |= {"COUNTERSIGN_HOME": str(home), "COUNTERSIGN_DATABASE_URL": pg_url}
    result = subprocess.run(
        [sys.executable, "-m", "countersign.cli", "demo", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"demo failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _stats(out: str) -> dict[str, int]:
    """The refund line of the statistics table (the session's database is shared, so the
    counts include other tests' demos)."""
    assert "Decision statistics per tool" in out
    [line] = [line for line in out.splitlines() if line.startswith("  refund ")]
    names = ("requests", "approved", "edited", "rejected", "expired")
    return dict(zip(names, map(int, line.split()[1:6]), strict=True))


def test_demo_approves_and_shows_card_replay_and_audit(pg_url: str, tmp_path: Path) -> None:
    out = _demo(pg_url, tmp_path / "home", "--auto", "approve")

    assert "event log    PostgreSQL (a configured database)" in out
    # The approval card: what, why, risk, amount, deadline, allowed decisions.
    assert "APPROVAL NEEDED" in out
    assert 'What      refund(order_id="A-17", amount=2400)' in out
    assert "Why       customer asked for a refund of 2400" in out
    assert "Risk      high" in out
    assert "Amount    2,400.00" in out
    assert "Deadline  " in out
    assert "on timeout: reject" in out
    assert "Decide    approve / edit / reject" in out
    # The run resumed by replay on another worker; the lookup was not executed again.
    assert "alice decides: approve" in out
    assert "Decision accepted." in out
    assert "The run resumed by replay on worker 2 and finished: completed" in out
    assert "lookup_order  ran 1x before the pause, 0x after it" in out
    assert "refund        ran 0x before the pause, 1x after it" in out
    assert "RunCompleted" in out
    # The audit line of the decision, and the statistics.
    [audit] = [line for line in out.splitlines() if "decision_accepted" in line]
    assert " alice " in audit
    assert " approve " in audit
    assert _stats(out)["approved"] >= 1
    assert "demo finished in" in out


def test_demo_can_be_run_again_and_reject(pg_url: str, tmp_path: Path) -> None:
    out = _demo(pg_url, tmp_path / "home", "--auto", "reject")

    assert "alice decides: reject" in out
    assert '"status":"refund rejected"' in out
    assert "refund        ran" not in out  # a rejected refund never runs
    assert _stats(out)["rejected"] >= 1
