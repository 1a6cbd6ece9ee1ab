"""The SMTP sink, in-process: mail in over SMTP, out over the HTTP read API."""

import asyncio
import smtplib
import socket
from email.message import EmailMessage
from pathlib import Path

import aiohttp

from osmcloud_localstack.smtp_sink import SmtpSink


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _send(port: int, to: str, subject: str, body: str, login: bool = False) -> None:
    msg = EmailMessage()
    msg["From"] = "Osmcloud <no-reply@example.test>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as s:
        if login:
            s.login("any", "thing")
        s.send_message(msg)


async def test_mail_is_kept_and_served(tmp_path: Path) -> None:
    smtp_port, http_port = _free_port(), _free_port()
    sink = SmtpSink("127.0.0.1", smtp_port, http_port, tmp_path / "mail")
    await sink.start()
    base = f"http://127.0.0.1:{http_port}"
    try:
        await asyncio.to_thread(_send, smtp_port, "Alice@Example.test", "Your code", "code: 424242\n")
        await asyncio.to_thread(_send, smtp_port, "bob@example.test", "Hi Bob", "hello\n", True)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
            async with http.get(f"{base}/messages", params={"to": "alice@example.test"}) as r:
                mails = await r.json()
            assert len(mails) == 1
            m = mails[0]
            assert m["to"] == ["alice@example.test"]
            assert m["from"] == "no-reply@example.test"
            assert m["subject"] == "Your code"
            assert "424242" in m["body"]
            assert m["received_at"]
            async with http.get(f"{base}/messages") as r:
                assert len(await r.json()) == 2
            assert len(list((tmp_path / "mail").glob("*.eml"))) == 2

            # a restarted sink still has the mails
            await sink.stop()
            sink = SmtpSink("127.0.0.1", smtp_port, http_port, tmp_path / "mail")
            await sink.start()
            async with http.get(f"{base}/messages", params={"to": "bob@example.test"}) as r:
                assert [m["subject"] for m in await r.json()] == ["Hi Bob"]

            async with http.delete(f"{base}/messages", params={"to": "bob@example.test"}) as r:
                assert (await r.json())["deleted"] == 1
            async with http.get(f"{base}/messages") as r:
                assert [m["subject"] for m in await r.json()] == ["Your code"]
            async with http.delete(f"{base}/messages") as r:
                assert r.status == 200
            async with http.get(f"{base}/messages") as r:
                assert await r.json() == []
            assert list((tmp_path / "mail").glob("*")) == []
    finally:
        await sink.stop()
