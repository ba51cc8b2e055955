"""The schema files: names and agreement with the dataclasses (evolution and old payloads:
test_releases.py)."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

import pytest

from events.approval import ApprovalRequest
from events.catalog import DEFAULT_SCHEMA_DIR, load_schema_files
from events.checkpoints import Checkpoint
from events.codec import _ENVELOPE_FIELDS
from events.commands import COMMAND_TYPES
from events.envelope import EventEnvelope
from events.fields import is_json_field
from events.json import canonical_json
from events.notices import NOTICE_TYPES
from events.registry import AgentRegistered
from events.run_events import RUN_EVENT_TYPES

APPROVAL_REQUEST = "countersign.events.ApprovalRequest"
NAMESPACES: dict[type[Any], str] = {
    **{cls: "countersign.events" for cls in RUN_EVENT_TYPES},
    **{cls: "countersign.commands" for cls in COMMAND_TYPES},
    **{cls: "countersign.approvals" for cls in NOTICE_TYPES},
    ApprovalRequest: "countersign.events",
    Checkpoint: "countersign.internal",
    AgentRegistered: "countersign.internal",
}
FILES = load_schema_files()


def _full_name(cls: type[Any]) -> str:
    return f"{NAMESPACES[cls]}.{cls.__name__}"


# -- names and fields -------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(DEFAULT_SCHEMA_DIR.glob("*.avsc")), ids=lambda p: p.stem)
def test_every_schema_file_is_named_by_its_full_name(path: Path) -> None:
    raw = json.loads(path.read_text())

    assert raw["type"] == "record"
    assert path.name == f"{raw['namespace']}.{raw['name']}.avsc"


def test_every_schema_file_belongs_to_a_message_type() -> None:
    assert set(FILES) == {_full_name(cls) for cls in NAMESPACES}


@pytest.mark.parametrize("cls", list(NAMESPACES), ids=lambda c: c.__name__)
def test_schema_fields_are_the_dataclass_fields(cls: type[Any]) -> None:
    schema_fields = [field["name"] for field in FILES[_full_name(cls)].raw["fields"]]
    expected = [field.name for field in dataclasses.fields(cls)]
    if cls in RUN_EVENT_TYPES:
        expected = [*_ENVELOPE_FIELDS, *expected]

    assert schema_fields == expected


def test_envelope_fields_are_the_envelope_without_its_payload() -> None:
    names = [field.name for field in dataclasses.fields(EventEnvelope)]
    assert list(_ENVELOPE_FIELDS) == [name for name in names if name != "payload"]


def _avro_type_for(cls: type[Any], field: dataclasses.Field[Any]) -> Any:
    if is_json_field(field):
        return "string"
    hint = eval(str(field.type), vars(__import__(cls.__module__, fromlist=["_"])))
    return _avro_type_for_hint(hint)


def _avro_type_for_hint(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is ApprovalRequest:
        return APPROVAL_REQUEST
    if origin is typing.Literal or hint is str:
        return "string"
    if origin in (typing.Union, types.UnionType):  # branch order is Avro's business (default)
        return sorted(_avro_type_for_hint(arg) for arg in args)
    if origin is tuple:
        return {"type": "array", "items": _avro_type_for_hint(args[0])}
    return {int: "long", float: "double", bool: "boolean", bytes: "bytes", type(None): "null"}[hint]


def _default_of(field: dataclasses.Field[Any]) -> Any:
    if field.default is dataclasses.MISSING:
        return dataclasses.MISSING
    if is_json_field(field):
        return canonical_json(field.default)
    if isinstance(field.default, tuple):
        return list(field.default)
    return field.default


@pytest.mark.parametrize("cls", list(NAMESPACES), ids=lambda c: c.__name__)
def test_schema_types_and_defaults_match_the_dataclass(cls: type[Any]) -> None:
    by_name = {field["name"]: field for field in FILES[_full_name(cls)].raw["fields"]}
    for field in dataclasses.fields(cls):
        schema_field = by_name[field.name]
        schema_type = schema_field["type"]
        if isinstance(schema_type, list):
            schema_type = sorted(schema_type)
        assert schema_type == _avro_type_for(cls, field), field.name
        assert schema_field.get("default", dataclasses.MISSING) == _default_of(field), field.name
