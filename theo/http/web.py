"""The web page at ``/``, the API reference at ``/docs``, and their files under ``/web/``.

:class:`WebPages` is an ASGI middleware on the API service (``service.py`` adds it with
BentoML's ``add_asgi_middleware``), so it answers before BentoML's own routes and before
the mounted FastAPI app: BentoML's index page at ``/`` loads Google Tag Manager, and
FastAPI's ``/docs`` and ``/redoc`` load their scripts from a CDN. Everything served here is
a file of :mod:`theo.web`, and each page's Content-Security-Policy tells the browser to
fetch nothing from another host. The pages hold no secret, so they need no API key; what
they call (``/v1/...``) does.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from theo.web import STATIC_DIR

ASSETS_PATH = "/web"
# Same origin only. 'self' covers ws:/wss: to this host (the live captions' WebSocket);
# blob: is the uploaded file in the audio player and the downloads.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        # Swagger UI sets style attributes while it renders.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)
_COMMON_HEADERS = {
    # Revalidate every time (ETag/Last-Modified make that cheap): an upgraded server's
    # page never runs with a stale script.
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PAGE_HEADERS = {**_COMMON_HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY}


class _Assets(StaticFiles):
    """The page's scripts, styles and images, revalidated on each load."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:  # no exception handler runs this far out: answer here
            return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(_COMMON_HEADERS)
        return response


def _page(path: Path) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(_: Request) -> Response:
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    return endpoint


def web_routes(static_dir: Path = STATIC_DIR) -> list[BaseRoute]:
    """``/`` (the page), ``/docs`` (Swagger UI), ``/redoc`` (to ``/docs``), ``/web/*``."""

    async def to_docs(_: Request) -> Response:
        return RedirectResponse("/docs", status_code=308)

    return [
        Route("/", _page(static_dir / "index.html"), methods=["GET"]),
        Route("/docs", _page(static_dir / "docs.html"), methods=["GET"]),
        # FastAPI's ReDoc page loads its script and fonts from CDNs; Swagger UI is local.
        Route("/redoc", to_docs, methods=["GET"]),
        Mount(ASSETS_PATH, app=_Assets(directory=static_dir)),
    ]


class WebPages:
    """Serve :func:`web_routes`; every other request goes on to ``app``."""

    def __init__(self, app: ASGIApp, static_dir: Path = STATIC_DIR) -> None:
        self.app = app
        self._router = Router(web_routes(static_dir), redirect_slashes=False, default=app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._router(scope, receive, send)
        else:  # websockets (/v1/realtime) and the lifespan belong to the app
            await self.app(scope, receive, send)
