"""Processes that start at once on a new home agree on its keys, and the trust file keeps
every key any of them made (a worker, a projector and the CLI often start together)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

from engine.trust import keys

PROCESSES = 6
KEYS_EACH = 5


def _first_use(home: str, start: Any, out: Any) -> None:
    start.wait(10)
    dev = keys.ensure_dev_issuer(Path(home))
    worker = keys.worker_key(Path(home), env={})
    mine = [keys.create_key(Path(home), issuer="bench").key.kid for _ in range(KEYS_EACH)]
    out.put(json.dumps([dev.kid, worker.kid, mine]))


def test_processes_starting_at_once_lose_no_key_from_the_trust_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    context = multiprocessing.get_context("spawn")
    start, out = context.Event(), context.Queue()
    workers = [
        context.Process(target=_first_use, args=(str(home), start, out)) for _ in range(PROCESSES)
    ]
    for process in workers:
        process.start()
    start.set()
    for process in workers:
        process.join(60)
    assert [process.exitcode for process in workers] == [0] * PROCESSES
    answers = [json.loads(out.get(timeout=5)) for _ in workers]

    assert len({dev for dev, _, _ in answers}) == 1  # one development issuer key
    assert len({worker for _, worker, _ in answers}) == 1  # one anchor key
    trust = json.loads(keys.trust_path(home).read_text())
    trusted = {key["kid"] for entry in trust["issuers"].values() for key in entry["keys"]}
    anchors = {key["kid"] for key in trust["anchor_keys"]}
    assert {dev for dev, _, _ in answers} <= trusted
    assert {kid for _, _, mine in answers for kid in mine} <= trusted  # none lost
    assert {worker for _, worker, _ in answers} == anchors
    assert not list(home.glob(".trust-*"))  # no temporary file left behind
