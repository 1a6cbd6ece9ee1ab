"""Browser tests of the web app (clients/web) against the test stack's gateway.

Debian's chromium (/usr/bin/chromium; bootstrap installs it) driven by Playwright through its
executable path, headless, as root with --no-sandbox, with a fresh profile per launch and none of
Chromium's own network traffic (the machine's network is closed). Screenshots go to
``$OSMCLOUD_WEB_ARTEFACTS`` (default ``.state/web-artefacts``), kept after the run.

Fixtures:
  browser     (session) a launched Chromium
  web         (function) WebApp: a fresh browser context (its own cookies) on the gateway, with
              helpers to sign in by mailed code, run axe-core, take screenshots, and collect the
              Content-Security-Policy violations and script errors the page reported
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from osmcloud_localstack.client import count_mails, read_code
from osmcloud_localstack.paths import repo_root

CHROMIUM = os.environ.get("OSMCLOUD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # root
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-gpu",
]
REPO = repo_root()
AXE = REPO / "clients" / "web" / "node_modules" / "axe-core" / "axe.min.js"
ARTEFACTS = Path(os.environ.get("OSMCLOUD_WEB_ARTEFACTS", str(REPO / ".state" / "web-artefacts")))

expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: run `bash infra/bootstrap.sh` (it installs Debian's chromium)")
    if not AXE.exists():
        pytest.fail(f"{AXE} not found: run `bash infra/bootstrap.sh` (npm ci in clients/web)")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        # launch() gives every run a fresh temporary profile (user-data-dir), removed at close
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


class WebApp:
    def __init__(self, stack, http: aiohttp.ClientSession, context: BrowserContext, page: Page) -> None:
        self.stack, self.http, self.context, self.page = stack, http, context, page
        self.url = stack.gateway_url.rstrip("/")
        self.problems: list[str] = []  # CSP violations and uncaught script errors
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))

    def _console(self, message) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.problems.append(f"CSP: {text}")
        elif message.type == "error" and "Failed to load resource" not in text:
            self.problems.append(f"console error: {text}")

    async def open(self, path: str = "/") -> None:
        await self.page.goto(self.url + path)

    async def heading(self, text: str | re.Pattern) -> None:
        await expect(self.page.get_by_role("heading", level=1)).to_have_text(text)

    async def sign_in(self, email: str) -> None:
        """E-mail, the code read from the SMTP sink, signed in: the Files screen shows."""
        page = self.page
        await self.open("/")
        await self.heading("Sign in")
        before = await count_mails(self.http, self.stack.smtp_sink_url, email)
        await page.get_by_label("E-mail address").fill(email)
        await page.get_by_role("button", name="Mail me a code").click()
        await expect(page.get_by_label("Code from the e-mail")).to_be_visible()
        code = await read_code(self.http, self.stack.smtp_sink_url, email, after=before)
        await page.get_by_label("Code from the e-mail").fill(code)
        await page.get_by_role("button", name="Sign in", exact=True).click()
        await self.heading("Files")

    async def axe(self, screen: str) -> list[dict]:
        """axe-core on the page as it is; returns the serious and critical violations."""
        await self.page.evaluate(AXE.read_text())  # evaluated by the DevTools protocol: no CSP applies
        result = await self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
        bad = [v for v in result if v.get("impact") in ("serious", "critical")]
        return [{"screen": screen, "id": v["id"], "impact": v["impact"], "help": v["help"],
                 "nodes": [n["target"] for n in v["nodes"]][:5]} for v in bad]

    async def shot(self, name: str, full_page: bool = True) -> Path:
        path = ARTEFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=full_page)
        return path

    async def csrf(self) -> str:
        cookies = {c["name"]: c["value"] for c in await self.context.cookies(self.url)}
        return cookies.get("__Host-osmcloud_csrf", "")


@pytest.fixture
async def web(stack, http, browser: Browser) -> AsyncIterator[WebApp]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB",
                                        accept_downloads=True)
    page = await context.new_page()
    try:
        yield WebApp(stack, http, context, page)
    finally:
        await context.close()
