"""Releases: every released schema stays readable, golden payloads of each release decode,
a later release (tests/release2.py) reads release 1's bytes, and release 1 tells a newer
release's bytes from junk."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import fastavro  # noqa: TID251  (an independent oracle for canonical forms)
import fastavro.schema  # noqa: TID251  (same)
import pytest

from events.canonical import canonical_form
from events.catalog import DEFAULT_SCHEMA_DIR, MESSAGE_TYPES, Catalog
from events.codec import Codec
from events.commands import SubmitDecision
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.errors import CatalogError, DecodeError, NewerSchema, UnknownSchema
from events.evolution import evolution_problems
from events.run_events import RunCompleted, RunStarted, ToolCallCompleted
from events.schema_header import SCHEMA_HEADER
from events.upcasting import Upcaster
from tests import release2
from tests.unit.golden import PAYLOADS, PAYLOADS_ROOT, from_json, payload_fixtures

CODEC = Codec()
CATALOG = CODEC.catalog
CURRENT, NEXT = str(CATALOG.release), str(CATALOG.release + 1)
"""Today's release, and the hypothetical next one of tests/release2.py."""


@pytest.fixture(scope="module")
def r2(tmp_path_factory: pytest.TempPathFactory) -> Codec:
    return release2.release2_codec(tmp_path_factory.mktemp("release2"))


# -- today's catalog -----------------------------------------------------------------------------


def test_today_is_release_2_and_every_schema_is_released() -> None:
    assert CATALOG.release == 2
    assert {v.name for v in CATALOG.versions} == set(MESSAGE_TYPES)
    changed_in_2 = {"countersign.events.RunParked", "countersign.events.RunStarted"}  # fork fields
    for name in MESSAGE_TYPES:
        assert CATALOG.version_of(name).version == (2 if name in changed_in_2 else 1)
    new_in_2 = {v.name for v in CATALOG.versions if v.release == 2}
    assert new_in_2 == {
        "countersign.events.RunQuarantined",
        "countersign.events.QuarantineLifted",
        "countersign.commands.LiftQuarantine",
        "countersign.approvals.QuarantineNotified",
        "countersign.events.RunResumed",
        "countersign.commands.ResumeRun",
        "countersign.internal.Checkpoint",
        "countersign.internal.AgentRegistered",
        "countersign.commands.ForkRun",
        *changed_in_2,
    }


@pytest.mark.parametrize("version", CATALOG.versions, ids=lambda v: f"{v.name}@{v.version}")
def test_canonical_form_agrees_with_fastavro(version: Any) -> None:
    parsed = fastavro.parse_schema(version.raw, named_schemas={})
    assert canonical_form(version.raw) == fastavro.schema.to_parsing_canonical_form(parsed)


def test_history_fingerprints_are_what_the_codec_writes() -> None:
    for name, cls in MESSAGE_TYPES.items():
        assert CODEC.fingerprint_of(cls) == CATALOG.version_of(name).fingerprint


def test_the_evolution_rules_hold_today() -> None:
    assert evolution_problems(CATALOG) == []


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "schemas"
    shutil.copytree(DEFAULT_SCHEMA_DIR, root)
    return root


def _edit(path: Path, change: Any) -> None:
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


def test_a_schema_changed_without_a_release_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(
        root / "countersign.events.RunFailed.avsc",
        lambda raw: raw["fields"].append({"name": "retry", "type": "boolean", "default": False}),
    )

    with pytest.raises(CatalogError, match="RunFailed: today's schema is not the one release 2"):
        Catalog(root)


def test_a_history_file_in_no_release_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    shutil.copy(
        root / "history/countersign.events.RunFailed/1.avsc",
        root / "history/countersign.events.RunFailed/2.avsc",
    )
    with pytest.raises(CatalogError, match="version 2 is in no release"):
        Catalog(root)


def test_a_removed_type_without_an_upcaster_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "countersign.events.RunParked.avsc").unlink()
    types = {n: c for n, c in MESSAGE_TYPES.items() if n != "countersign.events.RunParked"}

    with pytest.raises(CatalogError, match="RunParked version 1 has no reader"):
        Catalog(root, types=types)


def _released_change(tmp_path: Path, name: str, field: dict[str, Any]) -> Path:
    """A copy of the schemas where `name` gained `field` and release 2 says so."""
    root = _copy(tmp_path)
    _edit(root / f"{name}.avsc", lambda raw: raw["fields"].append(field))
    (root / "history" / name / "2.avsc").write_text((root / f"{name}.avsc").read_text())
    releases = json.loads((root / "releases.json").read_text())
    releases[NEXT] = {**releases[CURRENT], name: 2}
    (root / "releases.json").write_text(json.dumps(releases))
    return root


def test_the_check_refuses_a_field_added_without_a_default(tmp_path: Path) -> None:
    root = _released_change(
        tmp_path, "countersign.events.RunFailed", {"name": "retry", "type": "boolean"}
    )

    problems = evolution_problems(Catalog(root))

    assert len(problems) == 1
    assert "RunFailed: today's schema cannot read version 1" in problems[0]
    assert "reader_field_missing_default_value" in problems[0]


def test_the_check_refuses_a_changed_type(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "countersign.events.RunFailed.avsc"
    _edit(path, lambda raw: raw["fields"][-1].update(type="long"))  # error: string -> long
    (root / "history/countersign.events.RunFailed/2.avsc").write_text(path.read_text())
    releases = json.loads((root / "releases.json").read_text())
    releases[NEXT] = {**releases[CURRENT], "countersign.events.RunFailed": 2}
    (root / "releases.json").write_text(json.dumps(releases))

    problems = evolution_problems(Catalog(root))

    assert any("type_mismatch" in p for p in problems), problems


def test_the_check_wants_commands_readable_both_ways(tmp_path: Path) -> None:
    # A field removed from a command: today reads the old version (the field is skipped),
    # but a worker still on version 1 cannot read today's messages (no default to fill).
    root = _copy(tmp_path)
    name = "countersign.commands.CancelRun"
    _edit(root / f"{name}.avsc", lambda raw: raw["fields"].pop(0))  # command_id, no default
    (root / "history" / name / "2.avsc").write_text((root / f"{name}.avsc").read_text())
    releases = json.loads((root / "releases.json").read_text())
    releases[NEXT] = {**releases[CURRENT], name: 2}
    (root / "releases.json").write_text(json.dumps(releases))

    problems = evolution_problems(Catalog(root, types=MESSAGE_TYPES))

    assert [p for p in problems if "version 1 cannot read today's" in p], problems
    assert not [p for p in problems if "today's schema cannot read" in p], problems


def test_the_check_accepts_a_field_added_with_a_default(tmp_path: Path) -> None:
    root = _released_change(
        tmp_path,
        "countersign.commands.CancelRun",
        {"name": "channel", "type": ["null", "string"], "default": None},
    )
    assert evolution_problems(Catalog(root)) == []


def test_release2_passes_the_check(tmp_path: Path) -> None:
    assert evolution_problems(release2.release2_catalog(tmp_path)) == []


# -- golden payloads -----------------------------------------------------------------------------

GOLDEN = sorted(PAYLOADS_ROOT.glob("release-*/*.bin"))


def test_every_message_type_has_a_golden_payload_of_this_release() -> None:
    written = {
        type(m.payload if isinstance(m, EventEnvelope) else m) for m in payload_fixtures().values()
    }
    assert written == set(MESSAGE_TYPES.values())
    assert {p.stem for p in PAYLOADS.glob("*.bin")} == set(payload_fixtures())


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_golden_payload_decodes_to_its_recorded_value(path: Path) -> None:
    expected = from_json(json.loads(path.with_suffix(".json").read_text()))

    assert CODEC.decode(path.read_bytes()) == expected


# -- release 2 reads release 1 --------------------------------------------------------------------


def _r1_to_r2(value: Any, r2_cls: type[Any]) -> Any:
    """Release 1's `value` as release 2 reads it: the same fields, defaults for the new."""
    fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return r2_cls(**fields)


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_release2_reads_every_golden_payload(r2: Codec, path: Path) -> None:
    data = path.read_bytes()
    old = CODEC.decode(data)

    new = r2.decode(data)

    renamed = {
        RunStarted: release2.RunStarted,
        ToolCallCompleted: release2.ToolCallCompleted,
        RunCompleted: release2.RunFinished,
        SubmitDecision: release2.SubmitDecision,
    }
    if isinstance(old, EventEnvelope):
        assert isinstance(new, EventEnvelope)
        payload_cls = renamed.get(type(old.payload))
        payload = old.payload if payload_cls is None else _r1_to_r2(old.payload, payload_cls)
        assert new == dataclasses.replace(old, payload=payload)
    else:
        cls = renamed.get(type(old))
        assert new == (old if cls is None else _r1_to_r2(old, cls))


def test_release2_reads_release1_defaults_and_the_upcast_rename(r2: Codec) -> None:
    started = r2.decode_event((PAYLOADS / "run_started.bin").read_bytes())
    completed = r2.decode_event((PAYLOADS / "run_completed.bin").read_bytes())
    decision = r2.decode_command((PAYLOADS / "submit_decision.bin").read_bytes())

    assert isinstance(started.payload, release2.RunStarted)
    assert started.payload.tenant == ""
    assert type(completed.payload) is release2.RunFinished
    assert completed.type == "RunFinished"
    assert completed.payload.outcome == "completed"
    assert isinstance(completed.payload, RunCompleted)  # the engine's checks still hold
    assert isinstance(decision, release2.SubmitDecision)
    assert decision.channel is None


def test_release2_round_trips_its_new_fields_and_still_encodes_release1_classes(r2: Codec) -> None:
    envelope = from_json(json.loads((PAYLOADS / "run_started.json").read_text()))
    new = dataclasses.replace(
        envelope, payload=release2.RunStarted(**_fields(envelope.payload), tenant="acme")
    )

    assert r2.decode(r2.encode(new)) == new
    old_class = r2.decode_event(r2.encode(envelope))  # an engine built on release 1's classes
    assert old_class.payload == release2.RunStarted(**_fields(envelope.payload), tenant="")
    finished = r2.decode_event(
        r2.encode(dataclasses.replace(envelope, payload=RunCompleted(output=1)))
    )
    assert finished.payload == release2.RunFinished(output=1, outcome="completed")


def _fields(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def test_upcasting_never_touches_the_bytes_so_the_chain_verifies(r2: Codec) -> None:
    first = from_json(json.loads((PAYLOADS / "run_started.json").read_text()))
    first = dataclasses.replace(first, seq=0, prev_hash=GENESIS_HASH)
    raw_first = CODEC.encode(first)
    second = dataclasses.replace(
        first,
        event_id="evt-1",
        seq=1,
        prev_hash=hash_encoded(raw_first),
        payload=RunCompleted(output="ok"),
    )
    raw_second = CODEC.encode(second)

    decoded = [r2.decode_event(raw) for raw in (raw_first, raw_second)]

    assert decoded[1].prev_hash == hash_encoded(raw_first)
    assert type(decoded[1].payload) is release2.RunFinished
    assert [hash_encoded(raw) for raw in (raw_first, raw_second)] == [
        hash_encoded(CODEC.encode(first)),
        hash_encoded(CODEC.encode(second)),
    ]


def test_a_failing_upcaster_is_a_decode_error(tmp_path: Path) -> None:
    def broken(record: Any) -> dict[str, Any]:
        return {"output": record["no such field"]}

    catalog = Catalog(
        release2.write_release2_schemas(tmp_path),
        types=release2.TYPES,
        upcasters=(Upcaster(release2.RUN_COMPLETED, 1, release2.RUN_FINISHED, 1, broken),),
    )
    with pytest.raises(DecodeError, match=r"upcaster countersign\.events\.RunCompleted@1"):
        Codec(catalog=catalog).decode((PAYLOADS / "run_completed.bin").read_bytes())


def test_an_upcaster_whose_record_does_not_fit_is_a_decode_error(tmp_path: Path) -> None:
    catalog = Catalog(
        release2.write_release2_schemas(tmp_path),
        types=release2.TYPES,
        upcasters=(
            Upcaster(
                release2.RUN_COMPLETED, 1, release2.RUN_FINISHED, 1, lambda r: {**r, "seq": "x"}
            ),
        ),
    )
    with pytest.raises(DecodeError, match="does not fit"):
        Codec(catalog=catalog).decode((PAYLOADS / "run_completed.bin").read_bytes())


# -- release 1 meets release 2's bytes -----------------------------------------------------------


def _release2_bytes(r2: Codec) -> tuple[bytes, tuple[str, bytes]]:
    envelope = from_json(json.loads((PAYLOADS / "run_started.json").read_text()))
    new = dataclasses.replace(
        envelope, payload=release2.RunStarted(**_fields(envelope.payload), tenant="acme")
    )
    encoded = r2.encode(new)
    return encoded, r2.schema_header(encoded)


def test_release1_without_the_header_sees_an_unknown_schema(r2: Codec) -> None:
    encoded, _header = _release2_bytes(r2)
    with pytest.raises(UnknownSchema):
        CODEC.decode(encoded)


def test_release1_with_the_header_sees_a_newer_schema(r2: Codec) -> None:
    encoded, header = _release2_bytes(r2)

    match = f"written by release {NEXT}; this is release {CURRENT}"
    with pytest.raises(NewerSchema, match=match) as newer:
        CODEC.decode_event(encoded, headers=[header])
    assert newer.value.release == int(NEXT)
    assert newer.value.schema == "countersign.events.RunStarted"
    assert header[0] == SCHEMA_HEADER


def test_a_newer_claim_on_junk_is_still_junk(r2: Codec) -> None:
    encoded, header = _release2_bytes(r2)
    other_fp = encoded[:2] + bytes(8) + encoded[10:]  # another (unknown) fingerprint
    name, value = header
    text = value.decode()
    claims_r1 = text.replace(f";r={NEXT};", f";r={CURRENT};").encode()
    garbled = text.replace(";fp=", ";fp=x").encode()

    for data, headers in [
        (other_fp, [header]),  # the claim does not match the bytes it sits beside
        (encoded, [(name, claims_r1)]),  # a claim of a release we know is a lie
        (encoded, [(name, garbled)]),
        (encoded, [(name, value + b"x" * 300)]),
        (encoded, [header, header]),  # two claims: believe neither
        (encoded, [("other-header", value)]),
    ]:
        with pytest.raises(UnknownSchema):
            CODEC.decode(data, headers=headers)


def test_release1_header_of_its_own_bytes_names_release_1() -> None:
    encoded = (PAYLOADS / "start_run.bin").read_bytes()
    name, value = CODEC.schema_header(encoded)
    fingerprint = CODEC.fingerprint_of(SubmitDecision.__mro__[0]).hex()  # any: format check
    assert name == SCHEMA_HEADER
    assert value.startswith(b"countersign.commands.StartRun;v=1;r=1;fp=")
    assert len(fingerprint) == 16


def test_release2_type_of_knows_old_fingerprints(r2: Codec) -> None:
    assert r2.type_of((PAYLOADS / "run_completed.bin").read_bytes()) is release2.RunFinished
    assert CODEC.type_of((PAYLOADS / "run_completed.bin").read_bytes()) is RunCompleted
