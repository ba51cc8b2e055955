"""Asking whether the local broker runs writes nothing, and what a broker's start writes is
never seen half written: every CLI command asks (`bootstrap.backend`), often while another
process starts or asks too (a docs page's `countersign dev &` then `countersign start`)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from countersign import local_kafka
from countersign.atomic_write import write_atomically
from countersign.cli import main
from countersign.local_kafka_jars import LocalKafkaError
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


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("ports.json", '{"broker": '),  # cut short
        ("ports.json", "[1]"),
        ("ports.json", '{"broker": "x", "controller": 1}'),
        ("ports.json", '{"controller": 1}'),
        ("cluster.json", "[]"),
        ("cluster.json", '{"brokers": "many", "secure": false, "cluster_id": "c"}'),
    ],
)
def test_a_state_file_not_of_ours_is_refused_with_what_to_do(
    tmp_path: Path, name: str, content: str
) -> None:
    (tmp_path / name).write_text(content)

    with pytest.raises(LocalKafkaError, match=rf"{name} is unreadable .*remove {tmp_path}"):
        local_kafka.status(tmp_path)


def test_the_cli_says_so_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka_dir = tmp_path / "kafka"
    kafka_dir.mkdir()
    (kafka_dir / "ports.json").write_text("{")

    with pytest.MonkeyPatch.context() as env:
        env.setenv("COUNTERSIGN_HOME", str(tmp_path))
        code = main(["kafka", "status"])

    assert code == 1

    err = capsys.readouterr().err
    assert err.startswith("countersign: error: ")
    assert "ports.json is unreadable" in err
    assert "Traceback" not in err
