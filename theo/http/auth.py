"""Optional bearer-token auth (``THEO_API_KEY``), answered the way OpenAI answers a bad key."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from theo.errors import AuthenticationError
from theo.http.middleware import send_error

# Routes anyone may call: probes and the API description. Everything else needs the key,
# so a route added later is protected unless it is listed here.
PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})

_MISSING = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
# Unlike OpenAI, the message does not echo part of the key: it must never be logged.
_INCORRECT = "Incorrect API key provided. Check the key the server was started with (THEO_API_KEY)."


def bearer_token(authorization: bytes | None) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` header value, if there is one."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token:
        return None
    return token


class BearerAuthMiddleware:
    """401 unless the request carries ``Authorization: Bearer <api_key>``."""

    def __init__(self, app: ASGIApp, *, api_key: str):
        self.app = app
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        token = bearer_token(dict(scope["headers"]).get(b"authorization"))
        if token is not None and hmac.compare_digest(token, self._key):
            await self.app(scope, receive, send)
            return
        error = AuthenticationError(_MISSING if token is None else _INCORRECT)
        # The body was not read: close rather than leave it on the connection.
        await send_error(send, error, [(b"www-authenticate", b"Bearer"), (b"connection", b"close")])
