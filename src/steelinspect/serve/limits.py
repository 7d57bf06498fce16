"""Request limits as a pure ASGI middleware: the body is counted as it streams, whatever the headers say.

Checking Content-Length alone let a chunked upload (no Content-Length) of any size be read whole before the
413. Here every `receive()` the app makes is counted: the request is refused with 413 as soon as its running
total passes the limit (so at most the limit plus one chunk is ever read), a declared Content-Length over the
limit is refused before reading anything, and a body that has not finished arriving within the time limit
(a slow-loris upload) is refused with 408. The refusal closes the connection, so the client stops sending.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


# The scope key under which the request's deadline (event-loop time) reaches the app, which stops starting
# work on the request's files after it.
DEADLINE = "steelinspect.deadline"


class _Refused(Exception):
    """Raised out of `receive()` to stop the app reading a refused body."""


class BodyLimit:
    """Refuse a request whose body passes `max_bytes` (413) or does not arrive within `timeout_s` (408)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        mb = self.max_bytes / 2**20
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _answer(send, 400, "bad Content-Length header")
                return
            if int(declared) > self.max_bytes:
                await _answer(send, 413, f"request too large ({int(declared) / 2**20:.1f} MB; the limit is "
                                         f"{mb:g} MB per request, --max-request-mb)")
                return

        loop = asyncio.get_running_loop()
        deadline = scope[DEADLINE] = loop.time() + self.timeout_s
        received, body_done = 0, False
        refusal: tuple[int, str] | None = None
        answered = started = False

        async def counted_receive() -> Message:
            nonlocal received, body_done, refusal
            if refusal is not None:
                raise _Refused()
            if body_done:  # after the body, receive() only waits for a disconnect: no deadline on that
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError:
                refusal = (408, f"the request body did not arrive within {self.timeout_s:g} s (--request-timeout)")
                raise _Refused() from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.max_bytes:
                    refusal = (413, f"request too large (over {mb:g} MB per request, --max-request-mb)")
                    raise _Refused()
            return message

        async def guarded_send(message: Message) -> None:
            # Once the body is refused, whatever the app answers (FastAPI turns a failed body read into a 400)
            # is replaced by the refusal.
            nonlocal answered, started
            if refusal is not None and not started:
                if not answered:
                    answered = True
                    await _answer(send, *refusal)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if refusal is None or started:
                raise
        if refusal is not None and not answered and not started:
            await _answer(send, *refusal)


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
