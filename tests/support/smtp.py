"""A real SMTP server for tests: aiosmtpd on a free loopback port, keeping every mail."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["Inbox", "free_port", "smtp_server", "text_of"]


class Inbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        """The accepted mails, parsed from the raw bytes the server received."""
        raw = [e.original_content or b"" for e in self.envelopes]
        parsed = [message_from_bytes(content, policy=policy.default) for content in raw]
        return [m for m in parsed if isinstance(m, EmailMessage)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def text_of(mail: EmailMessage) -> str:
    """Every decoded text part of an email, joined."""
    return "\n".join(
        part.get_content() for part in mail.walk() if part.get_content_maintype() == "text"
    )


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on a free loopback port, without TLS or authentication."""
    handler, port = Inbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()
