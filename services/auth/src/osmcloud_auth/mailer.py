"""Mails one-time codes over SMTP."""

from email.message import EmailMessage

import aiosmtplib

from .domain import Purpose

SUBJECTS = {
    Purpose.LOGIN: "Your OsmCloud login code",
    Purpose.DELETE_ACCOUNT: "Confirm deleting your OsmCloud account",
    Purpose.OSMAND_LOGIN: "Your OsmAnd Cloud login code",
    Purpose.OSMAND_DELETE_ACCOUNT: "Confirm deleting your OsmAnd Cloud account",
}


class Mailer:
    def __init__(self, host: str, port: int, sender: str) -> None:
        self._host, self._port, self._sender = host, port, sender

    async def send_code(self, to: str, code: str, purpose: Purpose, valid_minutes: int) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = SUBJECTS[purpose]
        message.set_content(f"Your code: {code}\n\nIt is valid for {valid_minutes} minutes and can be used once.\n")
        await aiosmtplib.send(message, hostname=self._host, port=self._port, timeout=10)
