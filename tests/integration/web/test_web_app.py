"""The web app in a real browser (Debian's chromium via Playwright) against the real stack."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import expect

from osmcloud_localstack.client import GatewayClient, login


def new_email() -> str:
    return f"web-{uuid.uuid4().hex[:12]}@example.test"


async def test_sign_in_by_mailed_code_sets_a_cookie_scripts_cannot_read(web) -> None:
    email = new_email()
    await web.sign_in(email)
    cookies = {c["name"]: c for c in await web.context.cookies(web.url)}
    session = cookies["__Host-osmcloud_session"]
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"
    visible = await web.page.evaluate("document.cookie")
    assert "osmcloud_session" not in visible and "__Host-osmcloud_csrf" in visible
    await web.shot("files-empty")
    assert web.problems == []
