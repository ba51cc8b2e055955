"""The schema-registry adapter against an in-memory registry (httpx's MockTransport serves the
Confluent API's `GET /schemas/ids/{id}`): what it learns, what it refuses, how it is bounded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx  # noqa: TID251  (MockTransport: an in-memory registry behind the real client)
import pytest

from engine.errors import RegistryUnavailable
from engine.log.schema_registry import RegistrySettings, SchemaRegistry
from events.catalog import COMMANDS
from events.codec import HEADER_LEN, Codec
from events.commands import SubmitDecision
from events.errors import DecodeError, SchemaRefused, UnknownSchema
from tests import release2

DECISION = SubmitDecision(
    decision_id="dec-1",
    run_id="run-1",
    interrupt_id="int-1",
    kind="approve",
    decided_by="bob",
    issued_at_us=5,
)
OURS = Codec().catalog.version_of(f"{COMMANDS}.SubmitDecision").raw


def framed(schema_id: int, body: bytes) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + body


def body_of(encoded: bytes) -> bytes:
    return encoded[HEADER_LEN:]


class Registry:
    """Answers by id from `schemas` (a dict, or a function for odd answers); counts requests."""

    def __init__(self, schemas: dict[int, Any]) -> None:
        self.schemas = schemas
        self.requests: list[str] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url.path)
        schema_id = int(request.url.path.rsplit("/", 1)[1])
        answer = self.schemas.get(schema_id)
        if answer is None:
            return httpx.Response(404, json={"error_code": 40403, "message": "not found"})
        if callable(answer):
            result: httpx.Response = await answer()
            return result
        return httpx.Response(200, json={"schema": json.dumps(answer)})


def _adapter(
    registry: Registry, *, codec: Codec | None = None, **settings: Any
) -> tuple[Codec, SchemaRegistry]:
    codec = codec or Codec(registry_format=True)
    client = httpx.AsyncClient(transport=httpx.MockTransport(registry.handle))
    return codec, SchemaRegistry(
        codec, RegistrySettings("http://registry.test/apis/ccompat/v7", **settings), client=client
    )


async def test_a_registry_framed_decision_decodes_once_its_schema_is_prepared() -> None:
    registry = Registry({7: OURS})
    codec, adapter = _adapter(registry)
    value = framed(7, body_of(codec.encode(DECISION)))

    with pytest.raises(UnknownSchema, match="id 7 is not loaded"):
        codec.decode_command(value)
    await adapter.prepare([value])

    assert codec.decode_command(value) == DECISION
    assert registry.requests == ["/apis/ccompat/v7/schemas/ids/7"]


async def test_a_known_id_is_never_fetched_again() -> None:
    registry = Registry({7: OURS})
    codec, adapter = _adapter(registry)
    value = framed(7, body_of(codec.encode(DECISION)))

    for _ in range(3):
        await adapter.prepare([value, value])

    assert len(registry.requests) == 1


async def test_a_schema_the_registry_lacks_is_refused_and_remembered() -> None:
    registry = Registry({})
    codec, adapter = _adapter(registry)
    value = framed(9, body_of(codec.encode(DECISION)))

    await adapter.prepare([value])
    await adapter.prepare([value])

    with pytest.raises(SchemaRefused, match="no such schema"):
        codec.decode_command(value)
    assert len(registry.requests) == 1


def _ours_with(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    raw = json.loads(json.dumps(OURS))
    change(raw)
    return raw


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        (_ours_with(lambda r: r["fields"].pop(3)), "reader_field_missing_default_value"),
        (_ours_with(lambda r: r["fields"][3].update(type="long")), "type_mismatch"),
        (_ours_with(lambda r: r.update(name="Other")), "not one of our message types"),
        ({"type": "string"}, "not a record schema"),
        ([["null"]], "not a record schema"),
    ],
    ids=["missing-field", "changed-type", "other-name", "primitive", "union"],
)
async def test_a_schema_todays_reader_cannot_read_is_refused_with_the_reason(
    schema: Any, reason: str
) -> None:
    codec, adapter = _adapter(Registry({3: schema}))
    value = framed(3, body_of(Codec().encode(DECISION)))

    await adapter.prepare([value])

    with pytest.raises(SchemaRefused, match=reason):
        codec.decode_command(value)


async def test_deep_or_huge_answers_are_refused_without_reading_them_whole() -> None:
    deep = "[" * 20_000 + "]" * 20_000

    async def deep_answer() -> httpx.Response:
        return httpx.Response(200, content=json.dumps({"schema": deep}).encode())

    async def deep_json() -> httpx.Response:
        return httpx.Response(200, content=b'{"schema":' + b"[" * 100_000 + b"]" * 100_000)

    async def huge() -> httpx.Response:
        return httpx.Response(200, content=b"x" * 5_000_000)

    registry = Registry({1: deep_answer, 2: deep_json, 3: huge})
    codec, adapter = _adapter(registry, max_response_bytes=300_000)
    values = [framed(i, b"\x00") for i in (1, 2, 3)]

    await adapter.prepare(values)

    for value, reason in zip(
        values, ["deeper", "no schema text", "over 300000 bytes"], strict=True
    ):
        with pytest.raises(SchemaRefused, match=reason):
            codec.decode_command(value)


async def test_a_registry_that_is_down_or_slow_is_transient_and_nothing_is_remembered() -> None:
    async def slow() -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={"schema": json.dumps(OURS)})

    async def broken() -> httpx.Response:
        return httpx.Response(503, text="unavailable")

    registry = Registry({1: slow, 2: broken})
    codec, adapter = _adapter(registry, timeout_s=0.2)

    for schema_id in (1, 2):
        value = framed(schema_id, body_of(codec.encode(DECISION)))
        with pytest.raises(RegistryUnavailable):
            await adapter.prepare([value])
        assert codec.registry_ids([value]) == {schema_id}  # asked again next batch


async def test_lookups_per_batch_are_capped() -> None:
    registry = Registry({})
    codec, adapter = _adapter(registry, max_lookups_per_batch=4)
    values = [framed(i, b"\x00") for i in range(100)]

    await adapter.prepare(values)

    assert len(registry.requests) == 4
    assert len(codec.registry_ids(values)) == 96


async def test_release1_reads_a_release2_decision_through_the_registry(tmp_path: Path) -> None:
    """A publisher already on release 2's SubmitDecision (with `channel`), a worker still on
    release 1: the registry hands it the newer writer schema, which resolves to its own
    (forward compatibility), so the decision is read, `channel` ignored."""
    r2 = release2.release2_codec(tmp_path)
    newer = release2.SubmitDecision(**{**_fields(DECISION), "channel": "slack"})
    r2_schema = r2.catalog.version_of(f"{COMMANDS}.SubmitDecision").raw
    codec, adapter = _adapter(Registry({11: r2_schema}))
    value = framed(11, body_of(r2.encode(newer)))

    await adapter.prepare([value])

    assert codec.decode_command(value) == DECISION


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


def test_the_adapter_needs_a_codec_that_reads_the_registry_format() -> None:
    with pytest.raises(ValueError, match="registry_format"):
        SchemaRegistry(Codec(), RegistrySettings("http://registry.test"))


def test_a_writer_with_a_recursive_extra_field_cannot_nest_past_the_stack() -> None:
    """Today's reader skips a field it does not know, whatever its type: a hostile writer
    schema may add a recursive one and nest it thousands deep. Refused, not a crash."""
    codec = Codec(registry_format=True)
    node = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "next", "type": ["null", "Node"], "default": None}],
    }
    schema = _ours_with(lambda r: r["fields"].append({"name": "chain", "type": node}))
    codec.learn(5, json.dumps(schema))
    body = body_of(codec.encode(DECISION))
    shallow = framed(5, body + b"\x02" * 3 + b"\x00")
    deep = framed(5, body + b"\x02" * 50_000 + b"\x00")

    assert codec.decode_command(shallow) == DECISION
    with pytest.raises(DecodeError, match="deep"):
        codec.decode_command(deep)
