"""The console in headless Debian Chromium: the app on a real port, every request outside it refused and counted."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn

from tests.factories import PASSWORD, build_tree, make_user

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
README_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"
# WS_README_IMAGES=1 refreshes the README's screenshots from a run; otherwise a run leaves the checkout as it was.
REFRESH_README_IMAGES = os.environ.get("WS_README_IMAGES") == "1"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
_MISSING = not CHROMIUM.exists() and os.environ.get("WS_REQUIRE_SERVICES") != "1"
browser_only = [pytest.mark.browser,
                pytest.mark.skipif(_MISSING, reason="Debian chromium not installed (apt-get install chromium)")]


def keep_for_readme(shot: Path, name: str) -> None:
    if REFRESH_README_IMAGES:
        README_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, README_IMAGES / name)


VIEWPORTS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
async def tree(db, clock):
    t = await build_tree(db, now=clock.now())
    for username, role, region in (("wl_duty", "duty_officer", "331081"), ("wl_audit", "auditor", "331081"),
                                   ("wl_admin", "admin", "331081"), ("lh_duty", "duty_officer", "331082"),
                                   ("wl_leader", "leader", "331081"), ("lh_leader", "leader", "331082")):
        await make_user(db, username=username, role=role, region=region, now=clock.now())
    return t


@pytest.fixture
async def served(app) -> AsyncIterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started or task.done():
            break
        await asyncio.sleep(0.025)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@dataclass
class Browser:
    base: str
    browser: object
    foreign: list[str] = field(default_factory=list)  # every request to another host (all refused)
    shots: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # uncaught script errors on any page

    async def page(self, viewport: str):
        phone = viewport == "phone"
        ctx = await self.browser.new_context(viewport=VIEWPORTS[viewport], locale="zh-CN",  # type: ignore[attr-defined]
                                             timezone_id="America/New_York", is_mobile=phone, has_touch=phone)

        async def guard(route):
            host = urlsplit(route.request.url).hostname
            if route.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
                await route.continue_()
            else:
                self.foreign.append(route.request.url)
                await route.abort()

        await ctx.route("**/*", guard)
        page = await ctx.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        page.set_default_timeout(15_000)
        return page

    async def shot(self, page, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        return path


@pytest.fixture
async def chromium(served) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        b = Browser(base=served, browser=browser)
        yield b
        await browser.close()
    assert b.foreign == [], f"pages asked another host for {b.foreign}"
    assert b.errors == [], f"script errors: {b.errors}"


async def log_in(page, base: str, username: str, path: str, *, lands: str | None = None) -> None:
    """Open `path` with no session: the login form, then back to `path` (or the role's landing page)."""
    await page.goto(f"{base}{path}")
    assert "/console/login" in page.url
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}{lands or path}")
