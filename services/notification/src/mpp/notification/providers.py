"""Provider adapters: WhatsApp (Cloud API shape), SMS (HTTP gateway), email (SMTP) and the loopback
provider that keeps messages in the service's own database (local platform and demos).

Every adapter classifies its failures the same way: timeouts, connection errors, HTTP 5xx, 429 (with its
``Retry-After``) and 409 (a request with the same idempotency key is still being processed) are transient; other 4xx answers and refused recipients are permanent for
the channel. Recipients never appear in logs or errors.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Literal

import orjson
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.contracts.events.notification import DeliveryFailure, NotificationChannel
from mpp.notification.domain.phone import mask_email, mask_phone
from mpp.notification.httpclient import (
    HttpConnectError,
    HttpError,
    HttpPool,
    HttpResponse,
    HttpTimeout,
    TlsCertificateError,
)
from mpp.notification.persistence.tables import loopback_messages
from mpp.notification.ports import OutgoingMessage, SendResult

TlsMode = Literal["none", "starttls", "tls"]
log = logging.getLogger(__name__)


class HttpClient:
    """A provider's HTTP endpoint: one pool of keep-alive connections (:class:`HttpPool`) to its origin,
    the bearer token sent with every call. ``timeout_s`` bounds the connection (TCP and TLS) and each
    wait for the answer's bytes; ``total_timeout_s`` (three times ``timeout_s`` unless given) the whole
    call, a wait for a free connection included."""

    def __init__(
        self,
        url: str,
        *,
        token: str,
        timeout_s: float,
        connections: int,
        total_timeout_s: float | None = None,
        ca_file: str | None = None,
    ) -> None:
        origin, self.target = HttpPool.target(url)
        self._pool = HttpPool(
            origin,
            max_connections=connections,
            connect_timeout_s=timeout_s,
            read_timeout_s=timeout_s,
            total_timeout_s=total_timeout_s if total_timeout_s is not None else 3 * timeout_s,
            headers=[("Authorization", f"Bearer {token}"), ("Accept", "application/json")],
            ca_file=ca_file,
        )

    async def post(self, body: dict[str, Any], idempotency_key: str) -> HttpResponse | SendResult:
        """The provider's answer, or the transient failure that stands for it (timeout, no connection,
        no whole answer)."""
        try:
            return await self._pool.post_json(
                self.target,
                orjson.dumps(body),
                [("Idempotency-Key", idempotency_key)],
                resend_stale=True,  # the key makes a second copy harmless
            )
        except HttpTimeout:
            return SendResult.transient("timeout")
        except TlsCertificateError:
            log.error("notification.provider.tls_certificate_refused", extra={"origin": self._pool.origin})
            return SendResult.transient("tls_certificate")
        except HttpConnectError:
            return SendResult.transient("connect_error")
        except HttpError:
            return SendResult.transient("protocol_error")

    async def aclose(self) -> None:
        await self._pool.aclose()


def _retry_after(response: HttpResponse) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _classify(response: HttpResponse, *, id_of: Any) -> SendResult:
    status = response.status
    if 200 <= status < 300:
        try:
            body = response.json()
        except ValueError:
            body = {}
        return SendResult.sent(id_of(body) if isinstance(body, dict) else None)
    code = f"http_{status}"
    if status == 429:
        return SendResult.transient(code, _retry_after(response))
    if status >= 500 or status in (408, 409):
        # 409: the provider is still processing an earlier request with the same idempotency key (the one
        # in flight when the service crashed); asking again later gets that request's answer.
        return SendResult.transient(code, _retry_after(response))
    try:
        error = response.json().get("error", {})
        provider_code = str(error.get("code")) if isinstance(error, dict) and error.get("code") else None
    except (ValueError, AttributeError):
        provider_code = None
    reason = DeliveryFailure.INVALID_RECIPIENT if status == 404 else DeliveryFailure.PROVIDER_REJECTED
    return SendResult.permanent(reason, provider_code or code)


class WhatsAppCloudProvider:
    """``POST {base}/{phone-number-id}/messages`` with a bearer token: approved templates only."""

    idempotent = True

    def __init__(
        self,
        *,
        base_url: str,
        phone_number_id: str,
        token: str,
        timeout_s: float = 10.0,
        total_timeout_s: float | None = None,
        connections: int = 32,
        ca_file: str | None = None,
        name: str = "whatsapp-cloud",
    ) -> None:
        self.name = name
        self._client = HttpClient(
            f"{base_url.rstrip('/')}/{phone_number_id}/messages",
            token=token,
            timeout_s=timeout_s,
            total_timeout_s=total_timeout_s,
            connections=connections,
            ca_file=ca_file,
        )

    async def send(self, message: OutgoingMessage) -> SendResult:
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.recipient.removeprefix("+"),
            "type": "template",
            "template": message.message.whatsapp_template(),
        }
        answer = await self._client.post(body, message.delivery_id)
        if isinstance(answer, SendResult):
            return answer
        return _classify(answer, id_of=_whatsapp_message_id)

    async def close(self) -> None:
        await self._client.aclose()


def _whatsapp_message_id(payload: dict[str, Any]) -> str | None:
    messages = payload.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        found = messages[0].get("id")
        return str(found) if found else None
    return None


class HttpSmsProvider:
    """An SMS gateway taking ``POST {url}`` with ``{"to", "text", "reference", "sender"}`` as JSON."""

    idempotent = True

    def __init__(
        self,
        *,
        url: str,
        token: str,
        sender: str = "MPP",
        timeout_s: float = 10.0,
        total_timeout_s: float | None = None,
        connections: int = 32,
        ca_file: str | None = None,
        name: str = "sms-http",
    ) -> None:
        self.name = name
        self._sender = sender
        self._client = HttpClient(
            url,
            token=token,
            timeout_s=timeout_s,
            total_timeout_s=total_timeout_s,
            connections=connections,
            ca_file=ca_file,
        )

    async def send(self, message: OutgoingMessage) -> SendResult:
        body = {
            "to": message.recipient,
            "text": message.message.text,
            "reference": message.delivery_id,
            "sender": self._sender,
        }
        answer = await self._client.post(body, message.delivery_id)
        if isinstance(answer, SendResult):
            return answer
        return _classify(answer, id_of=lambda p: str(p["message_id"]) if p.get("message_id") else None)

    async def close(self) -> None:
        await self._client.aclose()


class SmtpEmailProvider:
    """Email over SMTP (smtplib in a worker thread). TLS: ``none``, ``starttls`` or ``tls`` (implicit).

    SMTP has no idempotency key: the delivery id is the ``Message-ID``, which lets mail systems drop a
    copy, but a message whose outcome is unknown after a crash is not sent again automatically."""

    idempotent = False

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        tls: TlsMode = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 15.0,
        ca_file: str | None = None,
        verify: bool = True,
        name: str = "smtp",
    ) -> None:
        self.name = name
        self._host, self._port, self._sender, self._tls = host, port, sender, tls
        self._username, self._password = username, password
        self._timeout = timeout_s
        self._context = ssl.create_default_context(cafile=ca_file)
        if not verify:
            # Only when configured so (a relay inside the operator's network with a certificate no CA
            # signed): the connection is encrypted but the server is not authenticated.
            self._context.check_hostname = False
            self._context.verify_mode = ssl.CERT_NONE
            if tls != "none":
                log.warning("notification.smtp.tls_unverified", extra={"host": host})

    def build(self, message: OutgoingMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = message.recipient
        mail["Subject"] = message.message.subject or ""
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        domain = self._sender.rpartition("@")[2] or "mpp.invalid"
        mail["Message-ID"] = f"<{message.delivery_id}@{domain}>"
        mail["X-MPP-Delivery-Id"] = message.delivery_id
        mail["X-MPP-Template"] = message.message.template
        mail.set_content(message.message.text)
        mail["Content-Language"] = message.message.locale  # after set_content, which resets Content-*
        return mail

    def _send_blocking(self, mail: EmailMessage) -> None:
        context = self._context
        client: smtplib.SMTP
        if self._tls == "tls":
            client = smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout, context=context)
        else:
            client = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        with client:
            if self._tls == "starttls":
                client.starttls(context=context)
            if self._username:
                client.login(self._username, self._password or "")
            client.send_message(mail)

    async def send(self, message: OutgoingMessage) -> SendResult:
        mail = self.build(message)
        try:
            await asyncio.to_thread(self._send_blocking, mail)
        except smtplib.SMTPRecipientsRefused:
            return SendResult.permanent(DeliveryFailure.INVALID_RECIPIENT, "recipient_refused")
        except ssl.SSLCertVerificationError:
            # The server's certificate does not verify (unknown CA, wrong name, expired): asking again
            # will not change it, and sending without checking it is only done when configured.
            log.error("notification.smtp.tls_certificate_refused", extra={"host": self._host})
            return SendResult.permanent(DeliveryFailure.PROVIDER_UNAVAILABLE, "tls_certificate")
        except smtplib.SMTPResponseException as exc:
            code = f"smtp_{exc.smtp_code}"
            if 400 <= exc.smtp_code < 500:
                return SendResult.transient(code)
            return SendResult.permanent(DeliveryFailure.PROVIDER_REJECTED, code)
        except (smtplib.SMTPException, OSError) as exc:
            return SendResult.transient(type(exc).__name__)
        return SendResult.sent(f"{message.delivery_id}")

    async def close(self) -> None:
        return None


class LoopbackProvider:
    """Keeps each message in the ``loopback_messages`` table instead of sending it (recipient masked).

    It honours the idempotency key: the same delivery id twice is stored once and counted as a duplicate.
    """

    idempotent = True

    def __init__(self, sessions: async_sessionmaker[AsyncSession], channel: NotificationChannel) -> None:
        self.name = f"loopback-{channel.value}"
        self._sessions = sessions
        self._channel = channel

    async def send(self, message: OutgoingMessage) -> SendResult:
        masked = mask_email(message.recipient) if "@" in message.recipient else mask_phone(message.recipient)
        row = {
            "delivery_id": message.delivery_id,
            "channel": self._channel.value,
            "provider": self.name,
            "template": message.message.template,
            "recipient": masked[:32],
            "subject": message.message.subject,
            "body": message.message.text,
            "received_at": datetime.now(UTC),
        }
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(loopback_messages.insert().values(**row))
        except IntegrityError:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(loopback_messages)
                    .where(loopback_messages.c.delivery_id == message.delivery_id)
                    .values(duplicates=loopback_messages.c.duplicates + 1)
                )
        return SendResult.sent(f"lb-{uuid.uuid5(uuid.NAMESPACE_URL, message.delivery_id).hex[:16]}")

    async def close(self) -> None:
        return None
