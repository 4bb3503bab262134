"""Real alert receivers on 127.0.0.1 for tests: an SMTP server and a webhook.

``SmtpReceiver`` is an aiosmtpd ``Controller`` on a free port that keeps every message it
accepts. ``Webhook`` is a threaded HTTP server that records the body of every POST it accepts
and can be told to answer 503, to hang without accepting, or to accept and then hang before
answering (a channel that took the alert but whose answer never arrived). Every wait is bounded.
"""

from __future__ import annotations

import email
import socket
import threading
import time
from collections.abc import Callable
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

HANG_LIMIT = 20.0  # seconds a hanging request is held at most


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


class SmtpReceiver:
    """A plain SMTP server (no TLS, no auth) that keeps the messages it receives."""

    def __init__(self) -> None:
        self.handler = _Handler()
        self.controller: Controller | None = None
        self.port = 0

    @property
    def messages(self) -> list[Message]:
        return self.handler.messages

    def url(self, to: str = "desk@example.org", **params: str) -> str:
        """The Apprise URL without credentials (PITFALLS 13)."""
        extra = "".join(f"&{k}={v}" for k, v in params.items())
        return (
            f"mailto://127.0.0.1:{self.port}?smtp=127.0.0.1&from=monitor@example.org"
            f"&to={to}&mode=insecure{extra}"
        )

    def __enter__(self) -> SmtpReceiver:
        for _attempt in range(10):  # the port may be taken between choosing and binding
            self.port = free_port()
            self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
            try:
                self.controller.start()
                return self
            except (OSError, RuntimeError):
                continue
        raise OSError("could not start the SMTP receiver")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        if self.controller is not None:
            self.controller.stop()

    def html_parts(self) -> list[str]:
        return [_part(m, "text/html") for m in self.messages]


def _part(message: Message, kind: str) -> str:
    for part in message.walk():
        if part.get_content_type() == kind:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    return ""


class Webhook:
    """Records POST bodies. ``mode``: ok | fail (503) | hang (never accepts) | accept-hang."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.times: list[float] = []  # when each recorded body was accepted (time.time())
        self.delay = 0.0  # seconds to read a request before accepting it (a slow channel)
        self.paths: list[str] = []
        self.requests = 0
        self.mode = "ok"
        self.fail_count = 0  # answer 503 to this many requests first, then the mode
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                owner.requests += 1
                mode = owner.mode
                if owner.fail_count > 0:
                    owner.fail_count -= 1
                    mode = "fail"
                if mode == "fail":
                    self._answer(503)
                    return
                if mode == "hang":
                    owner.release.wait(HANG_LIMIT)
                    self.close_connection = True
                    return
                if owner.delay:
                    time.sleep(min(owner.delay, HANG_LIMIT))
                owner.bodies.append(body)
                owner.times.append(time.time())
                owner.paths.append(self.path)
                if mode == "accept-hang":
                    owner.release.wait(HANG_LIMIT)
                    self.close_connection = True
                    return
                self._answer(200)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, step: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes (bounded in time and count)."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / step) + 1):
        if condition():
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(step)
    return condition()
