"""Sending one delivery: an incoming webhook (httpx) or an e-mail over SMTP (aiosmtplib) (I/O).

A send either succeeds, or raises `SendFailed` saying whether trying again can help: a
receiver that is down, slow, overloaded (5xx, 408, 429) or a temporary SMTP refusal (4xx) is
retried; a 4xx answer that says the message itself is wrong, or a permanent SMTP refusal, is
not. Every message carries its delivery id (`X-Countersign-Delivery`, and the e-mail's
Message-ID), so a receiver can drop a copy sent again after a sender died between sending and
recording it (the one case a second send can happen).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
import httpx

from consumers.notify_plan import Channel, Delivery, email_text, webhook_body

TIMEOUT_S = 10.0


class SendFailed(Exception):
    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "countersign@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False


class Senders:
    """One HTTP client for every webhook; an SMTP connection per e-mail."""

    def __init__(self, smtp: SmtpSettings) -> None:
        self._smtp = smtp
        self._http = httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False)

    async def close(self) -> None:
        await self._http.aclose()

    async def send(self, channel: Channel, delivery: Delivery) -> None:
        if channel.type == "webhook":
            await self._webhook(channel, delivery)
        else:
            await self._email(channel, delivery)

    async def _webhook(self, channel: Channel, delivery: Delivery) -> None:
        body = json.dumps(webhook_body(delivery.message)).encode()
        headers = {"Content-Type": "application/json", "X-Countersign-Delivery": delivery.id}
        try:
            response = await self._http.post(channel.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}"[:300], retry=True) from exc
        status = response.status_code
        if status < 300:
            return
        retry = status >= 500 or status in (408, 425, 429)
        raise SendFailed(f"the webhook answered {status}", retry=retry)

    async def _email(self, channel: Channel, delivery: Delivery) -> None:
        subject, text = email_text(delivery.message)
        message = EmailMessage()
        message["From"] = self._smtp.sender
        message["To"] = ", ".join(channel.to)
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = f"<{_local_part(delivery.id)}@countersign>"
        message["X-Countersign-Delivery"] = delivery.id
        message.set_content(text)
        smtp = self._smtp
        try:
            await aiosmtplib.send(
                message, hostname=smtp.host, port=smtp.port, username=smtp.username,
                password=smtp.password, start_tls=smtp.starttls, timeout=TIMEOUT_S,
            )  # fmt: skip
        except aiosmtplib.SMTPResponseException as exc:
            raise SendFailed(f"SMTP {exc.code}: {exc.message}"[:300], retry=exc.code < 500) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}"[:300], retry=True) from exc


def _local_part(delivery_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "." for c in delivery_id)[:200]
