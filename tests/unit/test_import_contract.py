"""Package faces are cheap: importing the pure parts loads no I/O library and no worker.

Each check runs in a fresh interpreter (a test process has imported everything already) and
reads `sys.modules` after the import.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

IO_WORLD = ("aiokafka", "asyncpg", "engine.runtime", "engine.log.kafka", "engine.log.postgres")


def _loaded_after(statement: str) -> set[str]:
    probe = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(out))


@pytest.mark.parametrize(
    "statement",
    [
        "import events",
        "import engine",
        "from engine import App, RunContext, When, Limit, Replayer",
        "import engine.core.state, engine.core.executor, engine.core.handling",
        "import engine.core.outbox",
        "import engine.log.port",
    ],
)
def test_pure_faces_load_no_io_world(statement: str) -> None:
    loaded = _loaded_after(statement)
    heavy = sorted(m for m in loaded if m.split(".")[0] in IO_WORLD or m.startswith(IO_WORLD))
    assert heavy == [], f"`{statement}` loaded {heavy}"


def test_the_worker_is_still_one_attribute_away() -> None:
    loaded = _loaded_after("import engine; engine.Worker")
    assert "engine.runtime.worker" in loaded


def test_the_core_does_not_import_the_runtime() -> None:
    import ast
    import pathlib

    for folder, banned in (("engine/core", "engine.runtime"), ("engine/agent", "engine.core")):
        for path in pathlib.Path(folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    assert not node.module.startswith(banned), f"{path} imports {node.module}"
