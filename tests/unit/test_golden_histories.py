"""The golden histories (tests/histories/: the examples' runs, recorded by the real worker)
replay identically against today's code; and `assert_replays` fails a test suite when a
change would not replay them. Record them again with `python -m tests.histories.record`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from countersign.bootstrap import load_app
from countersign.testing import assert_replays
from events.codec import Codec
from events.history_file import read_history
from tests import replay_variants

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
INDEX: dict[str, str] = json.loads((HISTORIES / "index.json").read_text())


def test_every_golden_history_is_listed() -> None:
    assert sorted(p.name for p in HISTORIES.glob("*.cshist")) == sorted(INDEX)
    assert len(INDEX) >= 8


@pytest.mark.parametrize("name", sorted(INDEX))
def test_a_golden_history_replays_identically(name: str) -> None:
    report = assert_replays(load_app(INDEX[name]), HISTORIES / name)

    assert report.identical
    assert report.events == len(read_history(Codec(), (HISTORIES / name).read_bytes()).events)


def test_assert_replays_fails_with_the_divergence_report() -> None:
    with pytest.raises(AssertionError) as failure:
        assert_replays(replay_variants.arguments_changed, HISTORIES / "refund-approved.cshist")

    message = str(failure.value)
    assert "refund-approved.cshist does not replay" in message
    assert "DIVERGES at seq 3 [arguments]: the arguments of refund changed" in message
    assert "amount: 2400 → 2160.0" in message
    assert "tests/replay_variants.py" in message


def test_assert_replays_names_a_version_the_app_lacks() -> None:
    history = HISTORIES / "refund-waiting.cshist"
    with pytest.raises(AssertionError, match="PARKS: the run started with refund v1"):
        assert_replays(replay_variants.version_two, history)
    assert assert_replays(replay_variants.version_two, history, version="2").identical
