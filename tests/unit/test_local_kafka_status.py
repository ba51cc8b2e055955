"""Asking whether the local broker runs writes nothing, and what a broker's start writes is
never seen half written: every CLI command asks (`bootstrap.backend`), often while another
process starts or asks too (a docs page's `countersign dev &` then `countersign start`)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from countersign import local_kafka
from countersign.atomic_write import write_atomically
from countersign.local_kafka_node import Node


def test_asking_about_a_home_never_used_for_kafka_writes_nothing(tmp_path: Path) -> None:
    state_dir = tmp_path / "kafka"

    assert local_kafka.status(state_dir) is None
    assert local_kafka.status(tmp_path) is None

    assert list(tmp_path.iterdir()) == []  # no directory made, no ports chosen and stored


def test_a_node_set_up_and_not_running_is_found_not_running(tmp_path: Path) -> None:
    made = Node.load_or_create(1, tmp_path, internal=False)

    assert Node.load(1, tmp_path) == made
    assert local_kafka.status(tmp_path) is None  # no pid: not running
    assert [p.name for p in tmp_path.iterdir()] == ["ports.json"]  # no partial file left


def _rewrite(path: Path, rounds: int) -> None:
    for n in range(rounds):
        stored = {"broker": n, "controller": n, "pad": "x" * 50_000}
        write_atomically(path, json.dumps(stored).encode())


def test_a_reader_sees_the_file_whole_while_another_process_rewrites_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ports.json"
    write_atomically(path, json.dumps({"broker": 0, "controller": 0}).encode())
    writer = multiprocessing.get_context("spawn").Process(target=_rewrite, args=(path, 300))
    writer.start()
    reads = 0
    try:
        while writer.is_alive() or reads == 0:
            stored = json.loads(path.read_text())  # a half-written file would not parse
            assert stored["broker"] == stored["controller"]
            reads += 1
    finally:
        writer.join(60)
    assert writer.exitcode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ports.json"]
