"""Who may write: every write needs `Authorization: Bearer <token>` of a reviewer in --token-file.

Two checks, one rule. AuthGate (pure ASGI, outside the app) refuses a write without a valid token before any of its
body is read, so an anonymous client cannot make the server parse a 64 MB upload only to be told 401. The route
dependency `reviewer` then gives the handler the reviewer's name (checking again when the gate did not run, e.g.
GET /api/auth/whoami). Without --token-file there is no valid token: the server only reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from steelinspect.serve.tokens import TokenStore

REVIEWER = "steelinspect.reviewer"  # the scope key the gate leaves the reviewer's name under
CHALLENGE = {"WWW-Authenticate": "Bearer"}
READS = ("GET", "HEAD", "OPTIONS")


def bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def check(tokens: TokenStore | None, header: str | None) -> tuple[str | None, str]:
    """(reviewer, "") for a valid token, else (None, why not)."""
    if tokens is None:
        return None, "this server takes no writes: it was started without --token-file"
    token = bearer(header)
    if token is None:
        return None, "a reviewer token is needed (Authorization: Bearer <token>; steelinspect token add NAME)"
    name = tokens.reviewer(token)
    if name is None:
        return None, "the reviewer token is not valid"
    return name, ""


class AuthGate:
    """Refuse a write (any method but GET, HEAD, OPTIONS) to a path `protected(path)` says needs a token with 401,
    before the app reads its body; leave the reviewer's name in the scope otherwise."""

    def __init__(self, app: ASGIApp, tokens: TokenStore | None, protected: Callable[[str], bool]):
        self.app, self.tokens, self.protected = app, tokens, protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READS or not self.protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        name, why = check(self.tokens, header)
        if name is None:
            body = json.dumps({"detail": why}).encode()
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"www-authenticate", b"Bearer"), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
            return
        scope[REVIEWER] = name
        await self.app(scope, receive, send)


def reviewer(request: Request) -> str:
    """Route dependency: the name of the reviewer whose token came with the request (401 without one)."""
    if REVIEWER in request.scope:
        return request.scope[REVIEWER]
    name, why = check(request.app.state.tokens, request.headers.get("authorization"))
    if name is None:
        raise HTTPException(401, why, headers=CHALLENGE)
    return name
