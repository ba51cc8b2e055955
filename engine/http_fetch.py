"""Documents fetched over HTTP, bounded in size and time (I/O).

An identity provider's JWKS and discovery document, and a schema registry's answers, come
from servers a deployment trusts but does not control. Bodies are read as a stream and cut
off past a cap (never buffered whole), redirects are not followed, and key documents come
over https only (plain http on a loopback address, for tests and development).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

__all__ = ["MAX_DOCUMENT_BYTES", "FetchError", "fetch_document", "read_capped"]

MAX_DOCUMENT_BYTES = 1_048_576
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class FetchError(ValueError):
    """The document could not be fetched, or was refused (the message says which)."""


async def read_capped(response: httpx.Response, limit: int) -> bytes | None:
    """The body of a streamed response, or None once it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def fetch_document(
    url: str, *, limit: int = MAX_DOCUMENT_BYTES, timeout_s: float = 5.0
) -> bytes:
    """The body at `url` (https, or http on loopback), at most `limit` bytes; else FetchError."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
        raise FetchError(f"refusing to fetch keys over {parts.scheme or 'no scheme'}: use https")
    try:
        async with (
            httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client,
            client.stream("GET", url) as response,
        ):
            response.raise_for_status()
            body = await read_capped(response, limit)
    except httpx.HTTPError as exc:
        raise FetchError(f"{url}: {exc}") from exc
    if body is None:
        raise FetchError(f"{url}: over {limit} bytes")
    return body
