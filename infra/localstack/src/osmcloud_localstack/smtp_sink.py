"""SMTP sink for the local stack: accepts every mail, keeps it, and lets tests read it over HTTP.

    python -m osmcloud_localstack.smtp_sink --smtp-port 2525 --http-port 2526 --mail-dir STATE/mail

SMTP (aiosmtpd): any sender, any recipient, optional AUTH (any credentials, no TLS needed).
Each message is kept in memory and written to MAIL_DIR as <id>.eml plus <id>.json (the record
below), so the sink survives a restart.

HTTP read API (aiohttp):
    GET    /healthz                       {"status": "ok"}
    GET    /messages[?to=ADDR]            [{"id", "to": [...], "from", "subject", "body",
                                            "received_at"}], oldest first; ``to`` matches any
                                           envelope recipient or To/Cc address, case-insensitively
    DELETE /messages[?to=ADDR]            forget all messages (or those for ADDR)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import email.utils
import json
import logging
import signal
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

log = logging.getLogger("osmcloud.smtp_sink")


def _addresses(values: list[str]) -> list[str]:
    return [addr.lower() for _, addr in email.utils.getaddresses(values) if addr]


def parse_message(raw: bytes, mail_from: str | None, rcpt_tos: list[str]) -> dict[str, Any]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    body_part = msg.get_body(preferencelist=("plain", "html")) if msg.is_multipart() else msg
    try:
        body = body_part.get_content() if body_part is not None else ""
    except (KeyError, LookupError):
        payload = body_part.get_payload(decode=True) if body_part is not None else b""
        body = payload.decode(errors="replace") if isinstance(payload, bytes) else str(payload)
    header_to = _addresses([str(v) for v in (msg.get_all("To") or []) + (msg.get_all("Cc") or [])])
    return {
        "id": uuid.uuid4().hex,
        "to": [r.lower() for r in rcpt_tos] or header_to,
        "header_to": header_to,
        "from": mail_from or str(msg.get("From", "")),
        "subject": str(msg.get("Subject", "")),
        "body": body,
        "received_at": datetime.now(UTC).isoformat(),
    }


@dataclass
class MailStore:
    mail_dir: Path | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)

    def load(self) -> None:
        if not self.mail_dir:
            return
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        loaded = []
        for path in self.mail_dir.glob("*.json"):
            try:
                loaded.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        self.messages = sorted(loaded, key=lambda m: m.get("received_at", ""))

    def add(self, record: dict[str, Any], raw: bytes) -> None:
        self.messages.append(record)
        if self.mail_dir:
            stem = f"{record['received_at'].replace(':', '').replace('+', 'Z')[:22]}-{record['id']}"
            record["_stem"] = stem
            (self.mail_dir / f"{stem}.eml").write_bytes(raw)
            (self.mail_dir / f"{stem}.json").write_text(json.dumps(record))

    def matching(self, to: str | None) -> list[dict[str, Any]]:
        if not to:
            return list(self.messages)
        addr = to.strip().lower()
        return [m for m in self.messages if addr in m.get("to", []) or addr in m.get("header_to", [])]

    def delete(self, to: str | None) -> int:
        doomed = self.matching(to)
        ids = {m["id"] for m in doomed}
        self.messages = [m for m in self.messages if m["id"] not in ids]
        if self.mail_dir:
            for m in doomed:
                stem = m.get("_stem")
                if stem:
                    for suffix in (".eml", ".json"):
                        (self.mail_dir / f"{stem}{suffix}").unlink(missing_ok=True)
        return len(doomed)


class SinkHandler:
    def __init__(self, store: MailStore) -> None:
        self.store = store

    # aiosmtpd calls the hooks and the authenticator with positional arguments: the ones unused here are `_`-named
    async def handle_RCPT(self, _server: SMTP, session: Session, envelope: Envelope, address: str,
                          _rcpt_options: list[str]) -> str:
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or (
            envelope.content if isinstance(envelope.content, bytes) else str(envelope.content or "").encode()
        )
        record = parse_message(raw, envelope.mail_from, list(envelope.rcpt_tos))
        self.store.add(record, raw)
        log.info("mail from %s to %s: %s", record["from"], ",".join(record["to"]), record["subject"])
        return "250 Message accepted for delivery"


def _accept_any_login(_server: SMTP, session: Session, envelope: Envelope, _mechanism: str,
                      _auth_data: Any) -> AuthResult:
    return AuthResult(success=True)


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def make_http_app(store: MailStore) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "messages": len(store.messages)})

    async def list_messages(request: web.Request) -> web.Response:
        return web.json_response([_public(m) for m in store.matching(request.query.get("to"))])

    async def delete_messages(request: web.Request) -> web.Response:
        return web.json_response({"deleted": store.delete(request.query.get("to"))})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/messages", list_messages)
    app.router.add_delete("/messages", delete_messages)
    return app


class SmtpSink:
    """Both servers in one asyncio loop; usable in-process (tests) or via main()."""

    def __init__(self, host: str, smtp_port: int, http_port: int, mail_dir: Path | None = None) -> None:
        self.host, self.smtp_port, self.http_port = host, smtp_port, http_port
        self.store = MailStore(mail_dir)
        self._smtp_server: asyncio.base_events.Server | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self.store.load()
        loop = asyncio.get_running_loop()
        handler = SinkHandler(self.store)
        self._smtp_server = await loop.create_server(
            lambda: SMTP(
                handler,
                hostname="osmcloud-smtp-sink",
                enable_SMTPUTF8=True,
                auth_require_tls=False,
                authenticator=_accept_any_login,
                loop=loop,
            ),
            host=self.host,
            port=self.smtp_port,
        )
        self._runner = web.AppRunner(make_http_app(self.store), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.http_port).start()
        log.info("smtp sink: SMTP on %s:%d, HTTP on %s:%d", self.host, self.smtp_port, self.host, self.http_port)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._smtp_server:
            self._smtp_server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._smtp_server.wait_closed(), 2)


async def _serve(args: argparse.Namespace) -> None:
    sink = SmtpSink(args.host, args.smtp_port, args.http_port, Path(args.mail_dir) if args.mail_dir else None)
    await sink.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sink.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m osmcloud_localstack.smtp_sink", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=2525)
    parser.add_argument("--http-port", type=int, default=2526)
    parser.add_argument("--mail-dir", default="", help="keep messages as files here (default: memory only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
