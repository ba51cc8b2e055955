"""`countersign probe`: ask a worker's or projector's probe port, as an orchestrator or
Prometheus would (docs/observability.md). For shells, health checks and scripts.

`probe ready` exits 0 when the process is ready, 1 when it is not (its reasons on stderr),
2 when nothing answers; `--wait` retries until it is. `probe metrics` prints the scrape.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from countersign.cli_options import wait_option
from countersign.settings import Settings

_PATHS = {"live": "/livez", "ready": "/readyz", "metrics": "/metrics"}
_MAX_BODY = 16 * 1024 * 1024


def register(commands: Any) -> None:
    probe = commands.add_parser(
        "probe", help="ask a worker's or projector's --health-port: live, ready, metrics"
    )
    probe.add_argument("what", choices=sorted(_PATHS), help="which endpoint")
    probe.add_argument("--port", type=int, required=True, help="the process's --health-port")
    probe.add_argument("--host", default="127.0.0.1")
    wait_option(probe, "until the answer is OK")
    probe.add_argument("--json", action="store_true", help="print {status, ok, body} as JSON")
    probe.set_defaults(handler=run_probe)


async def run_probe(settings: Settings, args: argparse.Namespace) -> int:
    deadline = time.monotonic() + (args.wait or 0.0)
    while True:
        status, body = await fetch(args.host, args.port, _PATHS[args.what])
        if status == 200 or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.25)
    text = body.decode("utf-8", "replace")
    if args.json:
        print(json.dumps({"status": status, "ok": status == 200, "body": text}))
    elif status == 200:
        print(text, end="")
    elif status:
        print(text, end="", file=sys.stderr)
    else:
        print(f"nothing answers on {args.host}:{args.port}", file=sys.stderr)
    return 0 if status == 200 else (1 if status else 2)


async def fetch(host: str, port: int, path: str) -> tuple[int, bytes]:
    """The status and body of `GET path`; (0, b"") when nothing answers."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except (OSError, TimeoutError):
        return 0, b""
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answer = await asyncio.wait_for(_read_all(reader), 10)
    except (OSError, TimeoutError, ValueError):
        return 0, b""
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ", 2)[1]), body
    except (IndexError, ValueError):
        return 0, b""


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await reader.read(65536):
        size += len(chunk)
        if size > _MAX_BODY:
            raise ValueError("answer too long")
        chunks.append(chunk)
    return b"".join(chunks)
