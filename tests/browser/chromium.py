"""Fixtures for a real headless Chromium (Debian's `chromium`, which `.ci/run` installs when missing),
driven by Playwright. Pages may load file:, data: and blob: URLs and the loopback servers the tests start;
anything else is refused and recorded, so a page that needs the network fails its test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streamflow import targets

SCREENSHOTS = targets.DATA_DIR / "reports" / "screenshots"
# The flags a locked-down machine needs: no sandbox as root, no GPU, and no calls home (which the
# closed network would refuse, many at a time).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
LOCAL = ("file:", "data:", "blob:", "http://127.0.0.1:", "about:")


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Chromium not found: `apt-get install chromium` (.ci/run installs it), or set CHROMIUM")
    return found


@dataclass
class Watched:
    """A page and what went wrong on it: console errors, uncaught exceptions, refused requests."""

    page: object
    errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def screenshot(self, name: str, full_page: bool = False) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / name
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Module-scoped: Playwright's sync API runs an asyncio loop in this thread while it is open,
    and every later `asyncio.run()` (the load tests') would refuse to start beside it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def watched(browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    seen = Watched(page)
    page.on("console", lambda message: seen.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: seen.errors.append(f"uncaught: {error}"))

    def gate(route):
        if route.request.url.startswith(LOCAL):
            route.continue_()
        else:
            seen.refused.append(route.request.url)
            route.abort()

    page.route("**/*", gate)
    yield seen
    context.close()
