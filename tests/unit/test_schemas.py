"""The schema files: names, agreement with the dataclasses, evolution, and old payloads."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import types
import typing
from pathlib import Path
from typing import Any

import fastavro  # noqa: TID251  (schema resolution between versions is fastavro's job here)
import fastavro.read  # noqa: TID251  (same)
import pytest

from events.approval import ApprovalRequest
from events.catalog import DEFAULT_SCHEMA_DIR, load_schema_files
from events.codec import _ENVELOPE_FIELDS, Codec
from events.commands import COMMAND_TYPES
from events.envelope import EventEnvelope
from events.fields import is_json_field
from events.json import canonical_json
from events.notices import NOTICE_TYPES
from events.run_events import RUN_EVENT_TYPES
from tests.unit.golden import PAYLOADS, SCHEMAS, from_json

APPROVAL_REQUEST = "countersign.events.ApprovalRequest"
NAMESPACES: dict[type[Any], str] = {
    **{cls: "countersign.events" for cls in RUN_EVENT_TYPES},
    **{cls: "countersign.commands" for cls in COMMAND_TYPES},
    **{cls: "countersign.approvals" for cls in NOTICE_TYPES},
    ApprovalRequest: "countersign.events",
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
    return {int: "long", float: "double", bool: "boolean", type(None): "null"}[hint]


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


# -- evolution: today's schemas against the released v1 ------------------------------------------


def _released(version: str) -> dict[str, dict[str, Any]]:
    suffix = f".{version}.avsc"
    return {
        path.name[: -len(suffix)]: json.loads(path.read_text())
        for path in sorted(SCHEMAS.glob(f"*{suffix}"))
    }


V1 = _released("v1")
CURRENT = {name: schema_file.raw for name, schema_file in FILES.items()}


def _parse_all(raws: dict[str, dict[str, Any]]) -> dict[str, Any]:
    named: dict[str, Any] = {}
    fastavro.parse_schema(raws[APPROVAL_REQUEST], named_schemas=named)
    return {
        name: fastavro.parse_schema(raw, named_schemas=dict(named)) for name, raw in raws.items()
    }


def _sample(schema: Any, raws: dict[str, dict[str, Any]]) -> Any:
    """A record for `schema` with a non-default value in every field."""
    if isinstance(schema, list):
        return _sample(next(branch for branch in schema if branch != "null"), raws)
    if isinstance(schema, str) and schema in raws:
        return _sample(raws[schema], raws)
    kind = schema if isinstance(schema, str) else schema["type"]
    if kind == "record":
        return {field["name"]: _sample(field["type"], raws) for field in schema["fields"]}
    if kind == "array":
        return [_sample(schema["items"], raws), _sample(schema["items"], raws)]
    return {"string": '"sample"', "long": 42, "double": 2.5, "boolean": True}[kind]


def _resolve(record: Any, writer: Any, reader: Any) -> Any:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, writer, record)
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, writer, reader)


def _fields(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {field["name"]: field for field in raw["fields"]}


def check_compatible(
    old_raws: dict[str, dict[str, Any]], new_raws: dict[str, dict[str, Any]], name: str
) -> None:
    """Backward (new reads old) and forward (old reads new) compatibility of one schema."""
    old_fields, new_fields = _fields(old_raws[name]), _fields(new_raws[name])
    for added in new_fields.keys() - old_fields.keys():
        assert "default" in new_fields[added], f"{name}.{added} was added without a default"
    for removed in old_fields.keys() - new_fields.keys():
        assert "default" in old_fields[removed], f"{name}.{removed} was removed without a default"
    old, new = _parse_all(old_raws), _parse_all(new_raws)

    old_record = _sample(old_raws[name], old_raws)
    read_by_new = _resolve(old_record, old[name], new[name])
    new_record = _sample(new_raws[name], new_raws)
    read_by_old = _resolve(new_record, new[name], old[name])

    _check_read(read_by_new, old_record, new_raws[name], new_raws, f"{name} (new reads old)")
    _check_read(read_by_old, new_record, old_raws[name], old_raws, f"{name} (old reads new)")


def _check_read(
    read: Any, written: Any, reader: Any, reader_raws: dict[str, dict[str, Any]], where: str
) -> None:
    """What was read holds every written value the reader knows, and defaults for the rest."""
    if isinstance(reader, str) and reader in reader_raws:
        reader = reader_raws[reader]
    if not (isinstance(reader, dict) and reader.get("type") == "record"):
        assert read == written, where
        return
    for field in reader["fields"]:
        at = f"{where}: {field['name']}"
        if field["name"] in written:
            _check_read(read[field["name"]], written[field["name"]], field["type"], reader_raws, at)
        else:
            assert read[field["name"]] == field["default"], at


def test_every_released_schema_is_still_here_and_every_schema_is_released() -> None:
    assert set(V1) == set(CURRENT)


@pytest.mark.parametrize("name", sorted(CURRENT))
def test_current_schema_is_compatible_with_v1(name: str) -> None:
    check_compatible(V1, CURRENT, name)


def test_the_compatibility_check_catches_a_field_added_without_default() -> None:
    new = copy.deepcopy(CURRENT)
    new["countersign.events.RunFailed"]["fields"].append({"name": "retryable", "type": "boolean"})

    with pytest.raises(AssertionError, match="without a default"):
        check_compatible(V1, new, "countersign.events.RunFailed")


def test_the_compatibility_check_catches_a_changed_type() -> None:
    new = copy.deepcopy(CURRENT)
    _fields(new["countersign.events.RunParked"])["call"]["type"] = "string"

    with pytest.raises(fastavro.read.SchemaResolutionError):
        check_compatible(V1, new, "countersign.events.RunParked")


def test_the_compatibility_check_accepts_a_field_added_with_default() -> None:
    new = copy.deepcopy(CURRENT)
    new[APPROVAL_REQUEST]["fields"].append(
        {"name": "confidence", "type": ["null", "double"], "default": None}
    )

    check_compatible(V1, new, APPROVAL_REQUEST)
    check_compatible(V1, new, "countersign.events.InterruptRaised")


# -- old payloads ------------------------------------------------------------------------------

PAYLOAD_FILES = sorted(PAYLOADS.glob("*.bin"))


def test_there_are_golden_payloads() -> None:
    assert len(PAYLOAD_FILES) >= 5


@pytest.mark.parametrize("path", PAYLOAD_FILES, ids=lambda p: p.stem)
def test_an_old_payload_decodes_to_its_recorded_value(path: Path) -> None:
    expected = from_json(json.loads(path.with_suffix(".json").read_text()))

    decoded = Codec().decode(path.read_bytes())

    assert decoded == expected
