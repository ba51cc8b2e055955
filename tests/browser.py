"""A real browser for the web tests: Playwright from PyPI driving Debian's Chromium.

Playwright's own browser download is not reachable here, so it is pointed at the system
binary (`apt-get install chromium`; `.ci/run` installs it). Each launch gets a fresh profile
directory (Playwright makes one per `launch`), and the flags that keep Chromium from calling
home: this machine has no route out, and without them Chromium's background connections are
refused many at a time. A missing binary fails the test with the reason; it never skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = os.environ.get("COUNTERSIGN_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("COUNTERSIGN_TEST_ARTIFACTS", ".countersign/artifacts"))


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium", pytrace=False)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=FLAGS, timeout=60_000
        )
        try:
            yield browser
        finally:
            await browser.close()


def artifact(name: str) -> Path:
    """Where a screenshot goes (COUNTERSIGN_TEST_ARTIFACTS, default .countersign/artifacts)."""
    folder = ARTIFACTS / "web"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
