"""History files (events.history_file): a run's exact bytes in an Avro container any Avro tool
reads, read back without trusting anything in the file."""

from __future__ import annotations

import io
import json
from typing import Any

import avro.datafile  # noqa: TID251  (an independent Avro reader: "any Avro tool can read it")
import avro.io  # noqa: TID251  (same)
import fastavro  # noqa: TID251  (a second independent reader)
import pytest

from events.codec import Codec
from events.container import MAGIC, read_container, write_container, zigzag
from events.envelope import hash_encoded
from events.errors import DecodeError, EncodeError
from events.history_file import FORMAT, HistoryFileError, read_history, write_history
from tests.replay_helpers import chained
from tests.unit.test_rerun import record

CODEC = Codec()


@pytest.fixture(scope="module")
def raws() -> list[bytes]:
    return chained(CODEC, record())


def test_a_round_trip_gives_back_the_exact_bytes_and_events(raws: list[bytes]) -> None:
    data = write_history(CODEC, raws)

    history = read_history(CODEC, data)

    assert list(history.raw) == raws
    assert [CODEC.encode(e) for e in history.events] == raws
    assert (history.run_id, history.agent, history.agent_version) == ("run-1", "refund", "1")
    assert history.head == hash_encoded(raws[-1])
    assert (history.redacted, history.release) == (False, CODEC.release)
    assert write_history(CODEC, list(history.raw)) == data  # the same run, the same file


def test_other_avro_tools_read_the_events_with_their_fields(raws: list[bytes]) -> None:
    data = write_history(CODEC, raws)

    with avro.datafile.DataFileReader(io.BytesIO(data), avro.io.DatumReader()) as reader:
        by_apache: list[dict[str, Any]] = [dict(r) for r in reader]  # type: ignore[call-overload]
        meta = reader.meta
    by_fastavro = list(fastavro.reader(io.BytesIO(data)))

    assert by_apache == by_fastavro
    assert [r["seq"] for r in by_apache] == list(range(len(raws)))
    assert by_apache[0]["requested_by"] == "bob"
    assert json.loads(by_apache[0]["input"]) == {"order_id": "A-17", "amount": 2400}
    assert meta["countersign.format"] == FORMAT.encode()


def test_a_file_refuses_what_is_not_one_runs_chain(raws: list[bytes]) -> None:
    with pytest.raises(EncodeError, match="seq 2 where 1 comes next"):
        write_history(CODEC, [raws[0], raws[2]])
    with pytest.raises(EncodeError, match="no events"):
        write_history(CODEC, [])


# -- hostile files ---------------------------------------------------------------------------------


def _meta_and_blocks(data: bytes) -> tuple[dict[str, bytes], list[tuple[int, bytes]], bytes]:
    container = read_container(data, max_records=10_000)
    return dict(container.metadata), list(container.blocks), container.sync


def _rebuilt(meta: dict[str, bytes], blocks: list[tuple[int, bytes]], sync: bytes) -> bytes:
    return write_container(meta, blocks, sync)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d[:20], "does not fit"),
        (lambda d: b"NotAvro" + d, "not an Avro object container"),
        (lambda d: d + b"\x02", "ends inside its framing"),
        (lambda d: d[: len(d) - 3] + b"zzz", "sync marker"),
    ],
    ids=["truncated", "not-a-container", "trailing-junk", "sync-broken"],
)
def test_broken_framing_is_refused(raws: list[bytes], mutate: object, reason: str) -> None:
    data = write_history(CODEC, raws)
    with pytest.raises(DecodeError, match=reason):
        read_history(CODEC, mutate(data))  # type: ignore[operator]


def test_a_tampered_event_breaks_the_chain(raws: list[bytes]) -> None:
    meta, blocks, sync = _meta_and_blocks(write_history(CODEC, raws))
    count, body = blocks[0]
    tampered = body.replace(b"bob", b"eve", 1)

    with pytest.raises(HistoryFileError, match="hash"):
        read_history(CODEC, _rebuilt(meta, [(count, tampered)], sync))


def test_a_file_must_end_at_its_stated_head(raws: list[bytes]) -> None:
    shorter = write_history(CODEC, raws[:-1])
    meta, blocks, sync = _meta_and_blocks(shorter)
    meta["countersign.head"] = hash_encoded(raws[-1]).encode()

    with pytest.raises(HistoryFileError, match="head"):
        read_history(CODEC, _rebuilt(meta, blocks, sync))


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("countersign.format", b"countersign-history/9", "not a history file this release reads"),
        ("countersign.fingerprints", b"zz", "hex"),
        ("countersign.fingerprints", b"0011", "wrong size"),
        ("countersign.fingerprints", b"0011223344556677", "does not read"),
        ("avro.schema", b'"string"', "embedded schema"),
        ("avro.codec", b"deflate", "only 'null'"),
        ("countersign.events", b"3", "event count"),
        ("countersign.release", b"two", "not a release number"),
    ],
)
def test_metadata_that_lies_is_refused(
    raws: list[bytes], key: str, value: bytes, reason: str
) -> None:
    meta, blocks, sync = _meta_and_blocks(write_history(CODEC, raws))
    meta[key] = value
    data = _rebuilt(meta, blocks, sync)
    if key == "avro.codec":  # write_container always writes null: patch the bytes instead
        data = data.replace(b"\x08null", b"\x0edeflate", 1)
    with pytest.raises(DecodeError, match=reason):
        read_history(CODEC, data)


def test_records_that_lie_are_refused(raws: list[bytes]) -> None:
    meta, blocks, sync = _meta_and_blocks(write_history(CODEC, raws))
    count, body = blocks[0]

    cases = {
        "union branch 41": [(1, zigzag(41) + body[1:])],
        "bytes after": [(count, body + b"\x00")],
        "ends inside a record": [(count + 5, body)],
    }
    for reason, bad in cases.items():
        with pytest.raises(DecodeError, match=reason):
            read_history(CODEC, _rebuilt(meta, bad, sync))


def test_huge_declared_sizes_allocate_nothing(raws: list[bytes]) -> None:
    meta, _, sync = _meta_and_blocks(write_history(CODEC, raws))
    huge_block = MAGIC + zigzag(0) + sync + zigzag(2**60) + zigzag(2**61) + b"\x00" * 8
    with pytest.raises(DecodeError, match="does not fit"):
        read_history(CODEC, huge_block)
    many = write_container(meta, [(1, b"\x00")] * 11, sync)
    with pytest.raises(DecodeError, match="more than 10 records"):
        read_history(CODEC, many, max_events=10)
    huge_meta = MAGIC + zigzag(2**40) + b"\x00"
    with pytest.raises(DecodeError, match="metadata"):
        read_history(CODEC, huge_meta)
