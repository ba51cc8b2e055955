"""Files written whole or not at all (I/O).

A reader in another process (a CLI command asking whether the local broker runs, a user
opening an export) sees the old content or the new, never a half-written file: the bytes go
to a temporary file beside the target, named for this process, then replace it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)  # only left when the write or the rename failed
