"""Another Kafka release for the local broker: the version is checked, a state dir keeps its."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from countersign import local_kafka
from countersign.local_kafka_jars import LocalKafkaError, ensure_jars


@pytest.mark.parametrize("version", ["../../etc", "4.1", "4.1.1</version>", "", "4.1.1 "])
def test_a_malformed_version_is_refused_before_anything_is_fetched(
    version: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COUNTERSIGN_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(LocalKafkaError, match="not a Kafka version"):
        ensure_jars(version)
    assert not (tmp_path / "cache").exists()


def test_a_state_dir_of_another_release_is_refused(tmp_path: Path) -> None:
    shape = {"brokers": 1, "secure": False, "cluster_id": "abc", "version": "4.1.1"}
    (tmp_path / "cluster.json").write_text(json.dumps(shape))
    with pytest.raises(LocalKafkaError, match=r"Kafka 4\.1\.1 cluster"):
        local_kafka.start(tmp_path)  # the pinned release, not the stored one


@pytest.mark.parametrize(
    "setting",
    [
        {"log.retention.ms": "1\nauthorizer.class.name=x"},  # a second line smuggled in
        {"a=b": "1"},
        {"a b": "1"},
        {"": "1"},
        {"log.retention.ms": ""},
    ],
)
def test_a_broker_setting_that_is_not_one_line_key_value_is_refused(
    setting: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(LocalKafkaError, match="not a broker setting"):
        local_kafka.start(tmp_path, settings=setting)
    assert not (tmp_path / "cluster.json").exists()  # refused before anything is made


def test_a_broker_setting_that_is_one_line_key_value_is_taken() -> None:
    setting = {"add.partitions.to.txn.retry.backoff.ms": "1"}
    assert local_kafka.checked_settings(setting) == setting
