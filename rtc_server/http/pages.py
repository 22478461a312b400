"""The built web pages (``web/dist``): the agent console, the widget script and the demo host page.

``/`` redirects to ``/agent/``; ``/agent/`` and ``/demo`` serve their ``index.html``; ``/widget.js`` and
every other file under the web folder are served by a path resolution that cannot leave the folder
(``..``, hidden files, NUL, backslashes and symlinks pointing out are refused). Pages carry a strict
Content-Security-Policy (no inline scripts). When the folder is missing, pages answer 503 with the
command that builds them.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

from rtc_server.app import CONFIG
from signaling.domain.errors import NotFound

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; "
    "style-src 'self' 'unsafe-inline'; frame-src 'self'; object-src 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "SAMEORIGIN",
}
#: Canonical route paths of this module (the OpenAPI coverage check leaves them out: pages, not API).
PAGE_PATHS = ("/", "/agent", "/agent/", "/demo", "/demo/", "/widget.js", "/{path}")

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".wasm": "application/wasm",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".wav": "audio/wav",
    ".txt": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
}


def default_web_dir() -> Path:
    """``<repo>/web/dist``, found relative to this package."""
    return Path(__file__).resolve().parents[2] / "web" / "dist"


def content_type(path: Path) -> str:
    """The type a built file is served with (by extension; these files are ours, not uploads)."""
    suffix = path.suffix.lower()
    if suffix in _TYPES:
        return _TYPES[suffix]
    guessed = mimetypes.guess_type(path.name)[0]
    return guessed or "application/octet-stream"


class WebDir:
    """The folder of built pages and the only way to turn a URL path into a file inside it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def built(self) -> bool:
        return self.root.is_dir()

    def resolve(self, relative: str) -> Path | None:
        """The file ``relative`` names inside the folder (a directory: its ``index.html``), or None."""
        if "\x00" in relative or "\\" in relative or len(relative) > 1024:
            return None
        parts = [p for p in relative.split("/") if p not in ("", ".")]
        if any(p == ".." or p.startswith(".") for p in parts):
            return None
        try:
            root = self.root.resolve(strict=True)
            candidate = root.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not candidate.is_relative_to(root):
            return None
        if candidate.is_dir():
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else None


WEB_DIR = web.AppKey("web_dir", WebDir)


def _not_built(folder: WebDir) -> web.Response:
    text = (
        "The web pages are not built yet.\n\n"
        f"Run `make web` in the repository (it builds {folder.root} with esbuild), then reload.\n"
    )
    return web.Response(
        status=503,
        text=text,
        content_type="text/plain",
        charset="utf-8",
        headers={"Retry-After": "30", "Cache-Control": "no-store"},
    )


def _serve(path: Path) -> web.FileResponse:
    headers = dict(PAGE_HEADERS)
    headers["Content-Type"] = content_type(path)
    headers["Cache-Control"] = "no-cache"
    if path.suffix.lower() != ".html":
        # The widget and its assets are loaded by other sites' pages.
        headers["Access-Control-Allow-Origin"] = "*"
        headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return web.FileResponse(path, headers=headers)


def _file(request: web.Request, relative: str) -> web.StreamResponse:
    folder = request.app[WEB_DIR]
    if not folder.built:
        return _not_built(folder)
    path = folder.resolve(relative)
    if path is None:
        raise web.HTTPNotFound(text="not found\n", headers={"X-Content-Type-Options": "nosniff"})
    return _serve(path)


async def root(request: web.Request) -> web.StreamResponse:
    """``GET /``: to the agent console."""
    raise web.HTTPFound("/agent/")


async def agent_redirect(request: web.Request) -> web.StreamResponse:
    """``GET /agent``: to ``/agent/`` so that relative asset URLs resolve inside it."""
    raise web.HTTPFound("/agent/")


async def agent_page(request: web.Request) -> web.StreamResponse:
    """``GET /agent/``: the agent console."""
    return _file(request, "agent/index.html")


async def demo_page(request: web.Request) -> web.StreamResponse:
    """``GET /demo`` and ``/demo/``: a host page embedding the widget."""
    return _file(request, "demo/index.html")


async def widget(request: web.Request) -> web.StreamResponse:
    """``GET /widget.js``: the customer widget (one script tag)."""
    return _file(request, "widget.js")


async def asset(request: web.Request) -> web.StreamResponse:
    """Any other file of the web folder."""
    path = request.match_info["path"]
    if path == "api" or path.startswith(("api/", "socket.io")):
        raise NotFound("no such route")
    return _file(request, path)


def setup(app: web.Application) -> None:
    """Register the page routes; the catch-all goes last."""
    configured = app[CONFIG].web_dir
    app[WEB_DIR] = WebDir(Path(configured) if configured else default_web_dir())
    app.router.add_get("/", root)
    app.router.add_get("/agent", agent_redirect)
    app.router.add_get("/agent/", agent_page)
    app.router.add_get("/demo", demo_page)
    app.router.add_get("/demo/", demo_page)
    app.router.add_get("/widget.js", widget)
    app.router.add_get("/{path:.*}", asset)
