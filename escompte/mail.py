"""Sending email over SMTP (``ESCOMPTE_SMTP_URL``: ``smtp://user:password@host:port``, or
``smtps://`` for implicit TLS; ``?starttls=1`` to upgrade a plain connection)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

SENDER = "Escompte <no-reply@escompte.invalid>"


class MailNotConfigured(RuntimeError):
    pass


def send(smtp_url: str | None, to: str, subject: str, body: str, *, sender: str = SENDER) -> str:
    """Send one plain-text message; returns its Message-ID. Raises on any SMTP error."""
    if not smtp_url:
        raise MailNotConfigured("ESCOMPTE_SMTP_URL is not set")
    url = urlsplit(smtp_url)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{abs(hash((to, subject, body)))}@escompte.invalid>"
    message.set_content(body)
    port = url.port or (465 if url.scheme == "smtps" else 25)
    client_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
    with client_class(url.hostname or "127.0.0.1", port, timeout=10) as client:
        if parse_qs(url.query).get("starttls") == ["1"]:
            client.starttls()
        if url.username:
            client.login(unquote(url.username), unquote(url.password or ""))
        client.send_message(message)
    return str(message["Message-ID"])
