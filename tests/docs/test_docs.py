"""The docs run, link to what exists, and stay readable (see tests/docs/runner.py)."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.docs.runner import ROOT, blocks, needs_kafka, pages, run_page

README_MAX_LINES = 250
SCREEN = 60
"""A page longer than this many lines has a table of contents."""


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT))


PLAIN = [pytest.param(p, id=_id(p)) for p in pages() if not needs_kafka(p)]
KAFKA = [pytest.param(p, id=_id(p)) for p in pages() if needs_kafka(p)]


@pytest.mark.postgres
@pytest.mark.parametrize("page", PLAIN)
def test_the_page_runs(page: Path) -> None:
    print("\n".join(run_page(page)))


@pytest.mark.kafka
@pytest.mark.postgres
@pytest.mark.parametrize("page", KAFKA)
def test_the_kafka_page_runs(page: Path, kafka_bootstrap: str) -> None:
    prefix = f"docs{uuid.uuid4().hex[:8]}"
    env = {
        "COUNTERSIGN_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "COUNTERSIGN_TOPIC_PREFIX": prefix,
        "COUNTERSIGN_WORKER_GROUP": f"{prefix}.workers",
        "COUNTERSIGN_PROJECTOR_GROUP": f"{prefix}.projector",
    }
    print("\n".join(run_page(page, env)))


# -- what the pages are made of ---------------------------------------------------------------


@pytest.mark.parametrize("page", [pytest.param(p, id=_id(p)) for p in pages()])
def test_every_block_is_run_or_shown_and_skips_say_why(page: Path) -> None:
    found = blocks(page)  # raises on a fence that would silently not run

    run = [b for b in found if b.lang in ("sh", "python")]
    skipped = [b for b in run if b.skip is not None]
    assert all(b.skip for b in skipped)
    assert len(skipped) <= max(2, len(run) // 3), f"{page.name}: most blocks are skipped"


def test_the_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()

    assert len(lines) <= README_MAX_LINES
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in "\n".join(lines), f"README does not link {page.name}"


_HEADING = re.compile(r"^(#{2,6}) (.+?)\s*$")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = None if in_code else _HEADING.match(line)
        if heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading[2].lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def _prose(page: Path) -> str:
    """The page without its code blocks (links inside code are examples, not links)."""
    return re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("page", [pytest.param(p, id=_id(p)) for p in pages()])
def test_relative_links_lead_somewhere(page: Path) -> None:
    broken = []
    for target in _LINK.findall(_prose(page)):
        if re.match(r"^[a-z]+:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no such heading")
    assert broken == []


def _text_files() -> list[Path]:
    """The repository's files (tracked, or new and not ignored) that are text we write."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    skip = (".avsc", ".json", ".jsonl", ".bin", ".avro")
    return [ROOT / name for name in listed if not name.endswith(skip) and (ROOT / name).is_file()]


def test_every_docs_path_cited_in_code_and_docs_exists() -> None:
    cited = re.compile(r"(?<![\w/.-])docs/[\w./-]*\w")
    missing = []
    for path in _text_files():
        for name in cited.findall(path.read_text(errors="replace")):
            if not (ROOT / name).exists():
                missing.append(f"{path.relative_to(ROOT)}: {name}")
    assert missing == []


@pytest.mark.parametrize("page", [pytest.param(p, id=_id(p)) for p in pages()])
def test_a_long_page_has_a_table_of_contents(page: Path) -> None:
    text = page.read_text()
    sections = [m[1] for m in re.finditer(r"^## (.+?)\s*$", _prose(page), re.MULTILINE)]
    if len(text.splitlines()) <= SCREEN:
        return
    first_section = text.index("\n## ") if "\n## " in text else len(text)
    toc = set(re.findall(r"\]\(#([^)]+)\)", text[:first_section]))
    slugs = {re.sub(r"[^\w\- ]", "", s.lower()).replace(" ", "-") for s in sections}
    assert slugs <= toc, f"not in the contents at the top: {sorted(slugs - toc)}"
