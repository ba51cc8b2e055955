"""The compiled builders (`events.building`) make the same messages and refuse the same records,
with the same errors, as the general path: the record read into a dict, the mapper's
`from_avro`, the classes' own `__init__`. Valid encodings of every message type, the fuzzer's
hostile mutations of them, and fields over their limits are decoded both ways."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings

from events import avro
from events.building import _maker
from events.catalog import MESSAGE_TYPES
from events.checkpoints import Checkpoint
from events.codec import MAGIC, Codec
from events.commands import StartRun
from events.envelope import EventEnvelope
from events.errors import DecodeError
from events.json import canonical_json
from events.reading import read
from events.run_events import ToolCallCompleted
from tests.unit.test_codec_fuzz import mutated, valid_encodings

CODEC = Codec()
CHECK = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _general(data: bytes) -> Any:
    """`Codec.decode` as it was before the builders: the dict reader, then `_message`."""
    writer, start = CODEC._writer_of(data, ())
    if writer.read is None:  # not a current schema: both ways take the same path
        return CODEC.decode(data)
    record, end = read(writer.read, data, start)
    if not isinstance(record, dict):
        raise DecodeError("the body is not a record")
    if end != len(data):
        raise DecodeError(f"{len(data) - end} trailing bytes after a {writer.name} record")
    return CODEC._message(writer, record)


def _outcome(decode: Any, data: bytes) -> tuple[str, Any, str]:
    try:
        message = decode(data)
    except DecodeError as exc:
        return "refused", type(exc), str(exc)
    # repr names every class and tells 1 from 1.0 and True, where == would not
    return "read", message, repr(message)


def _same_both_ways(data: bytes) -> None:
    built, general = _outcome(CODEC.decode, data), _outcome(_general, data)
    event(built[0])
    assert built == general
    if built[0] == "read":
        assert type(built[1]) is type(general[1])
        payload = getattr(built[1], "payload", None)
        assert type(payload) is type(getattr(general[1], "payload", None))


@CHECK
@given(data=valid_encodings())
def test_valid_encodings_build_the_same_messages(data: bytes) -> None:
    writer = CODEC._by_fingerprint[data[2:10]]
    assert writer.fused is not None  # every current schema has a builder
    _same_both_ways(data)


@CHECK
@given(data=mutated())
def test_mutations_are_refused_or_built_the_same(data: bytes) -> None:
    _same_both_ways(data)


def _encoded(cls: type[Any], **fields: Any) -> bytes:
    """A record of `cls`'s current schema with `fields` set as given, past the encoder's
    checks (which would refuse them): what a hostile writer sends."""
    target = CODEC._by_class[cls]
    return MAGIC + target.version.fingerprint + avro.write(target.schema, fields)


def test_over_limit_fields_are_refused_with_the_same_error() -> None:
    start = dict(
        command_id="c", run_id="r", agent="a", agent_version="1", requested_by="u",
        input=canonical_json({"a": 1}), issued_at_us=1,
    )  # fmt: skip
    samples = [
        _encoded(StartRun, **{**start, "requested_by": "u" * 100_000}),
        _encoded(StartRun, **{**start, "input": "[" * 200 + "]" * 200}),
        _encoded(StartRun, **{**start, "input": "NaN"}),
        _encoded(Checkpoint, restore_from=-1, consumed=None, attempt_at=None, attempts=0),
    ]
    for data in samples:
        built = _outcome(CODEC.decode, data)
        assert built[0] == "refused", built
        assert built == _outcome(_general, data)


def test_a_post_init_still_runs() -> None:
    """A class with `__post_init__` is made by calling it: its checks refuse the record."""
    assert _maker(Checkpoint) is None
    data = _encoded(Checkpoint, restore_from=-1, consumed=None, attempt_at=None, attempts=0)
    with pytest.raises(DecodeError, match="non-negative"):
        CODEC.decode(data)
    assert CODEC._by_fingerprint[data[2:10]].fused is not None  # built, by calling the class


@pytest.mark.parametrize("cls", sorted(MESSAGE_TYPES.values(), key=lambda c: c.__name__))
def test_made_objects_are_the_classes_own(cls: type[Any]) -> None:
    """What a builder makes is an instance of the class itself: frozen, equal, hashed,
    copied, pickled and replaced as one its `__init__` made."""
    twin = _maker(cls)
    if twin is None:
        assert hasattr(cls, "__post_init__") or not dataclasses.is_dataclass(cls)
        return
    made = object.__new__(twin)
    for f in dataclasses.fields(cls):
        setattr(made, f.name, f"x-{f.name}")
    made.__class__ = cls
    normal = cls(**{f.name: f"x-{f.name}" for f in dataclasses.fields(cls)})
    assert type(made) is cls
    assert made == normal
    assert repr(made) == repr(normal)
    assert hash(made) == hash(normal)
    assert pickle.loads(pickle.dumps(made)) == normal
    assert copy.deepcopy(made) == normal
    name = dataclasses.fields(cls)[0].name
    assert dataclasses.replace(made, **{name: "y"}) == dataclasses.replace(normal, **{name: "y"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, name, "z")


def test_a_class_that_is_not_plain_is_called() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Extended(ToolCallCompleted):
        note: str = ""

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            raise ValueError("no")

    @dataclasses.dataclass(slots=True)
    class Mutable:
        a: int

    for cls in (Extended, Checked, Mutable):
        assert _maker(cls) is None
    assert _maker(EventEnvelope) is not None
