"""bench/stages.py's arithmetic: a lone decision's stages from the stamps its wrappers took."""

from __future__ import annotations

import asyncio

import pytest

from bench.stages import Stamps


class _Client:
    def __init__(self) -> None:
        self.calls = 0

    async def poll(self, empty: bool) -> list[int]:
        self.calls += 1
        return [] if empty else [1]


def test_a_refund_s_two_commits_are_summed_and_the_pause_between_them_is_kept() -> None:
    stamps = Stamps()
    for name, moment in [
        ("polled", 1.002),
        ("commit_began", 1.003),
        ("offsets_sent", 1.005),
        ("txn_ended", 1.008),
        ("commit", 1.009),
        ("commit_began", 1.010),
        ("txn_ended", 1.015),
        ("commit", 1.016),
    ]:
        stamps.add(name, moment)

    stages = stamps.stages(sent=1.000, acked=1.001, seen=1.018)

    assert stages is not None
    assert stages["acked"] == pytest.approx(0.001)
    assert stages["to worker"] == pytest.approx(0.002)
    assert stages["worker"] == pytest.approx(0.001)
    assert stages["commits"] == pytest.approx(0.006 + 0.006)
    assert stages["  offsets"] == pytest.approx(0.002)
    assert stages["  records"] == pytest.approx(0.003)  # the first transaction's
    assert stages["  between"] == pytest.approx(0.001)
    assert stages["to reader"] == pytest.approx(0.002)
    assert stages["total"] == pytest.approx(0.018)


def test_a_decision_without_a_transaction_of_its_own_is_not_counted() -> None:
    stamps = Stamps()
    stamps.add("polled", 1.0)

    assert stamps.stages(sent=0.9, acked=0.95, seen=1.1) is None


def test_an_empty_poll_leaves_no_stamp() -> None:
    stamps = Stamps()
    original = _Client.poll
    try:
        stamps.wrap(_Client, "poll", "polled")
        client = _Client()
        asyncio.run(client.poll(True))
        assert "polled" not in stamps.at
        asyncio.run(client.poll(False))
        assert len(stamps.at["polled"]) == 1
        assert client.calls == 2
    finally:
        _Client.poll = original
