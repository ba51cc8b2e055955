"""The schema-registry adapter (I/O): writer schemas by id, over the Confluent REST API.

Confluent Schema Registry, Apicurio (under `/apis/ccompat/v7`) and Karapace serve
`GET /schemas/ids/{id}` → `{"schema": "<Avro schema text>", ...}`. The worker calls
`prepare(values)` once per poll batch, before decoding: every registry-framed command whose
schema id the codec does not know yet is looked up, judged by the codec (`Codec.learn`: one
of our types, today's reader can read it, small and shallow) and remembered, so decoding the
batch stays pure and synchronous. Answers are bounded: a timeout per lookup, a size cap on the
body, a cap on lookups per batch; a registry that is down or refuses us raises
`RegistryUnavailable` (retry the batch later: its commands are not poison), while a schema
the registry does not have, or one the codec refuses, is remembered as refused, and its
records are dead-lettered with the reason when decoded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import structlog

from engine.errors import RegistryUnavailable
from engine.http_fetch import read_capped
from events.codec import Codec
from events.errors import SchemaRefused
from events.json import loads

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RegistrySettings:
    url: str
    """Base URL of the Confluent-compatible API, e.g. http://registry:8081 or
    http://apicurio:8080/apis/ccompat/v7."""
    timeout_s: float = 5.0
    max_response_bytes: int = 262_144
    max_lookups_per_batch: int = 32
    """Distinct unknown ids looked up per batch; the rest wait for the next batch's call (and
    are dead-lettered as not loaded if decoded before). Real producers use a handful of ids."""


class SchemaRegistry:
    def __init__(
        self, codec: Codec, settings: RegistrySettings, *, client: httpx.AsyncClient | None = None
    ) -> None:
        if codec.registry is None:
            raise ValueError("the codec must be built with registry_format=True")
        self._codec = codec
        self._settings = settings
        self._base = settings.url.rstrip("/")
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_s), follow_redirects=False
        )

    async def prepare(self, values: Sequence[bytes]) -> None:
        """Fetch the writer schemas that registry-framed `values` need and the codec lacks."""
        missing = sorted(self._codec.registry_ids(values))
        for schema_id in missing[: self._settings.max_lookups_per_batch]:
            await self._load(schema_id)

    async def close(self) -> None:
        await self._client.aclose()

    async def _load(self, schema_id: int) -> None:
        try:
            async with asyncio.timeout(self._settings.timeout_s):
                status, body = await self._get(f"{self._base}/schemas/ids/{schema_id}")
        except (httpx.HTTPError, TimeoutError) as exc:
            raise RegistryUnavailable(f"schema registry: {type(exc).__name__}: {exc}") from exc
        if status == 404:
            self._codec.refuse(schema_id, "the registry has no such schema")
            log.warning("registry_schema_missing", schema_id=schema_id)
            return
        if status != 200:
            raise RegistryUnavailable(f"schema registry answered {status} for id {schema_id}")
        if body is None:
            self._codec.refuse(schema_id, f"answer over {self._settings.max_response_bytes} bytes")
            return
        reason = self._learn(schema_id, body)
        if reason is None:
            log.info("registry_schema_loaded", schema_id=schema_id)
        else:
            log.warning("registry_schema_refused", schema_id=schema_id, reason=reason)

    async def _get(self, url: str) -> tuple[int, bytes | None]:
        """Status and body, or None for a body over the size cap (never read in full)."""
        limit = self._settings.max_response_bytes
        async with self._client.stream("GET", url, headers={"Accept": "application/json"}) as r:
            if r.status_code != 200:
                return r.status_code, b""
            return r.status_code, await read_capped(r, limit)

    def _learn(self, schema_id: int, body: bytes) -> str | None:
        """Hand the schema text to the codec; the reason it was refused, or None."""
        try:
            answer = loads(body.decode("utf-8"), max_chars=self._settings.max_response_bytes)
        except ValueError:  # UnicodeDecodeError, JsonRefused: not an answer we can read
            answer = None
        text, reason = _schema_text(answer)
        if text is None:
            self._codec.refuse(schema_id, reason)
            return reason
        try:
            self._codec.learn(schema_id, text)
        except SchemaRefused as exc:
            return str(exc)
        return None


def _schema_text(answer: object) -> tuple[str | None, str]:
    """The schema text of a registry's answer, or None and why not."""
    if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
        return None, "the registry's answer has no schema text"
    if answer.get("schemaType", "AVRO") != "AVRO":
        return None, f"a {answer.get('schemaType')} schema, not Avro"
    if answer.get("references"):
        return None, "schemas with references are not accepted"
    return str(answer["schema"]), ""
