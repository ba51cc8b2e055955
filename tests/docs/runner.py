"""Runs the code blocks of a Markdown page the way a reader would: in order, in one terminal.

The convention (BRIEFING.md; docs/development.md says it for contributors):
- every ```sh and ```python block of README.md and docs/*.md is executed, in order, page by
  page, in a fresh temporary working directory, with COUNTERSIGN_HOME set to a temporary
  directory of its own and the repository's .venv/bin first on PATH;
- the ```sh blocks of a page run in one bash session (`set -euo pipefail`), so a variable set
  or a process started in one block is there in the next, as in a terminal; stdin is empty;
- the ```python blocks of a page run in one namespace, in this process, in that directory;
- output shown to readers goes in ```text blocks, which are not run; other languages (json,
  sql) are shown, not run; an unlabelled fence or ```bash is refused (it would not run);
- `<!-- docs: skip (the reason) -->` on the line before a block: not run;
- `<!-- docs: write NAME -->` on the line before a block (of any language): the block is also
  written to the file NAME in the working directory (a module or a policy file that a later
  shell block uses);
- `<!-- docs: kafka -->` as a page's first line: the page needs the test session's Kafka
  broker; the runner exports COUNTERSIGN_KAFKA_BOOTSTRAP and a fresh topic prefix and groups.

At the end of a page the runner stops what the page left running: the processes of its
shell's process group (by PID: SIGTERM, then SIGKILL), the local broker and the embedded
PostgreSQL under its COUNTERSIGN_HOME.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
RUN = frozenset({"sh", "python"})
SHOW = frozenset({"text", "json", "sql", "toml", "yaml", "diff"})
BLOCK_TIMEOUT_S = 300.0
_FENCE = re.compile(r"^```([\w-]*)\s*$")
_DIRECTIVE = re.compile(
    r"^<!-- docs: (skip \((?P<reason>.+)\)|write (?P<name>[\w./-]+)|kafka) -->$"
)


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True, kw_only=True)
class Block:
    page: Path
    line: int
    lang: str
    code: str
    skip: str | None = None
    write: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def needs_kafka(page: Path) -> bool:
    first = next((line for line in page.read_text().splitlines() if line.strip()), "")
    return first.strip() == "<!-- docs: kafka -->"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of `page` with the directive on the line before each, if any.
    Raises ValueError for a fence that would silently not run, or an unclosed one."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    number = 0
    while number < len(lines):
        opening = _FENCE.match(lines[number])
        if not opening:
            number += 1
            continue
        lang, start = opening[1], number
        end = next((i for i in range(start + 1, len(lines)) if lines[i].strip() == "```"), None)
        if end is None:
            raise ValueError(f"{page.name}:{start + 1}: a code fence is not closed")
        if lang not in RUN | SHOW:
            raise ValueError(
                f"{page.name}:{start + 1}: ```{lang} is neither run (sh, python) nor shown "
                f"({', '.join(sorted(SHOW))}): label it"
            )
        directive = _DIRECTIVE.match(lines[start - 1].strip()) if start else None
        found.append(
            Block(
                page=page,
                line=start + 1,
                lang=lang,
                code="\n".join(lines[start + 1 : end]) + "\n",
                skip=directive["reason"] if directive else None,
                write=directive["name"] if directive else None,
            )
        )
        number = end + 1
    return found


class BlockFailed(AssertionError):
    pass


class Shell:
    """One bash session for the ```sh blocks of a page, in its own process group."""

    def __init__(self, cwd: Path, env: Mapping[str, str], scratch: Path) -> None:
        self._scratch = scratch
        self._proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
            env=dict(env),
            text=True,
            start_new_session=True,
        )
        self._send("set -euo pipefail")

    def _send(self, line: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def run(self, block: Block, number: int) -> str:
        """The block's output; BlockFailed with it if a command fails or it takes too long."""
        script = self._scratch / f"block-{number}.sh"
        out = self._scratch / f"block-{number}.out"
        done = self._scratch / f"block-{number}.done"
        script.write_text(block.code)
        if self._proc.poll() is not None:
            raise BlockFailed(f"{block.where}: the shell is gone (an earlier block failed)")
        self._send(f"source {script} > {out} 2>&1 < /dev/null; touch {done}")
        deadline = time.monotonic() + BLOCK_TIMEOUT_S
        while not done.exists():
            code = self._proc.poll()
            if code is not None:
                raise BlockFailed(f"{block.where}: exit status {code}\n{_tail(out)}")
            if time.monotonic() > deadline:
                raise BlockFailed(f"{block.where}: still running after {BLOCK_TIMEOUT_S:.0f}s")
            time.sleep(0.05)  # polling for the block's end marker, not waiting on a guess
        return out.read_text(errors="replace")

    def stop(self) -> list[int]:
        """End the session and every process of its group; the PIDs that had to be stopped."""
        try:
            group = [p for p in psutil.process_iter() if _group_of(p) == self._proc.pid]
        finally:
            with contextlib.suppress(OSError, ValueError):
                assert self._proc.stdin is not None
                self._proc.stdin.close()
        left = [p for p in group if p.pid != self._proc.pid]
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(left, timeout=20)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(timeout=10)
        return [p.pid for p in left]


def _group_of(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (OSError, psutil.Error):
        return None


def _tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return "(no output)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Page:
    """A page being run: its directories, environment, shell and Python namespace."""

    path: Path
    root: Path
    env: dict[str, str]

    @property
    def cwd(self) -> Path:
        return self.root / "work"

    @property
    def home(self) -> Path:
        return self.root / "home"


@contextlib.contextmanager
def page_context(path: Path, extra_env: Mapping[str, str]) -> Iterator[Page]:
    # Not under pytest's tmp dir: as root, pgserver opens every ancestor of its data dir.
    root = Path(tempfile.mkdtemp(prefix="countersign-docs-"))
    (root / "work").mkdir()
    (root / "scratch").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env["COUNTERSIGN_HOME"] = str(root / "home")
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra_env)
    page = Page(path, root, env)
    try:
        yield page
    finally:
        _stop_servers(page.home)
        shutil.rmtree(root, ignore_errors=True)


def _stop_servers(home: Path) -> None:
    from countersign import local_kafka, local_pg

    with contextlib.suppress(Exception):
        local_pg.stop_embedded(home / "pg")
    with contextlib.suppress(Exception):
        local_kafka.stop(home / "kafka")


def run_page(path: Path, extra_env: Mapping[str, str] | None = None) -> list[str]:
    """Run every block of the page; returns what was run or skipped, one line each."""
    done: list[str] = []
    with page_context(path, extra_env or {}) as page:
        shell = Shell(page.cwd, page.env, page.root / "scratch")
        namespace: dict[str, object] = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
        try:
            for number, block in enumerate(blocks(path)):
                if block.write:
                    (page.cwd / block.write).write_text(block.code)
                if block.lang not in RUN:
                    continue
                if block.skip:
                    done.append(f"skipped {block.where}: {block.skip}")
                    continue
                if block.lang == "sh":
                    shell.run(block, number)
                else:
                    _run_python(block, page, namespace)
                done.append(f"ran {block.where}")
        finally:
            left = shell.stop()
            if left:
                done.append(f"stopped what the page left running: pids {left}")
    return done


def _run_python(block: Block, page: Page, namespace: dict[str, object]) -> None:
    saved_env, saved_cwd, saved_path = dict(os.environ), Path.cwd(), list(sys.path)
    os.environ.clear()
    os.environ.update(page.env)
    os.chdir(page.cwd)
    sys.path.insert(0, str(page.cwd))
    try:
        exec(compile(block.code, block.where, "exec"), namespace)
    except BaseException as error:
        raise BlockFailed(f"{block.where}:\n{traceback.format_exc()}") from error
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
