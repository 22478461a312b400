"""The built web pages served by the server (``config.web_dir``; a stand-in ``dist`` folder here).

Pins: ``/`` redirects to ``/agent/``; the console, demo page, widget and assets are served with the
right types; pages carry the Content-Security-Policy (no inline scripts), nosniff and Referrer-Policy;
no URL reaches a file outside the folder (``..`` plain or percent-encoded, backslashes, NUL, hidden
files, a symlink pointing out); unknown ``/api/`` paths stay JSON errors; without a build, ``/agent/``
answers 503 saying to run ``make web``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from rtc_server.http.pages import CSP
from tests.conftest import RunningServer, start_server

SECRET = "TOP-SECRET-OUTSIDE-DIST"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The real server with ``web_dir`` pointing at a small built-looking folder, beside a secret file."""
    dist = tmp_path / "dist"
    (dist / "agent").mkdir(parents=True)
    (dist / "demo").mkdir()
    (dist / "assets").mkdir()
    (dist / "agent" / "index.html").write_text(
        '<!doctype html><title>Console</title><script src="/agent/app.js"></script>'
    )
    (dist / "agent" / "app.js").write_text("console.log('agent');")
    (dist / "demo" / "index.html").write_text(
        '<!doctype html><title>Demo shop</title><script src="/widget.js"></script>'
    )
    (dist / "widget.js").write_text("(function(){/* widget */})();")
    (dist / "assets" / "app.css").write_text("body{margin:0}")
    (dist / "assets" / "ring.mp3").write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00")
    (dist / ".env").write_text(SECRET)
    (tmp_path / "secret.txt").write_text(SECRET)
    (dist / "assets" / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (dist / "assets" / "up").symlink_to(tmp_path)
    srv = await start_server(tmp_path / "data", web_dir=str(dist))
    yield srv
    await srv.runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def fetch(
    http: aiohttp.ClientSession, server: RunningServer, raw_path: str, **kwargs: object
) -> tuple[int, dict[str, str], str]:
    """GET ``raw_path`` exactly as written (no client-side normalisation of ``..`` or escapes)."""
    url = URL(f"{server.url}{raw_path}", encoded=True)
    async with http.get(url, allow_redirects=False, **kwargs) as resp:  # type: ignore[arg-type]
        return resp.status, dict(resp.headers), await resp.text(errors="replace")


async def test_root_redirects_to_the_console(http: aiohttp.ClientSession, server: RunningServer) -> None:
    """``/`` and ``/agent`` are 302 to ``/agent/``."""
    for path in ("/", "/agent"):
        status, headers, _ = await fetch(http, server, path)
        assert status == 302 and headers["Location"] == "/agent/"


async def test_pages_and_security_headers(http: aiohttp.ClientSession, server: RunningServer) -> None:
    """Console and demo pages are HTML with the exact CSP (no ``unsafe-inline`` script), nosniff and a
    Referrer-Policy."""
    for path, title in (("/agent/", "Console"), ("/demo", "Demo shop"), ("/demo/", "Demo shop")):
        status, headers, body = await fetch(http, server, path)
        assert status == 200 and f"<title>{title}</title>" in body
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert headers["Content-Security-Policy"] == CSP
        script_src = [d for d in CSP.split(";") if d.strip().startswith(("script-src", "default-src"))]
        assert all("unsafe-inline" not in d for d in script_src)
        assert "object-src 'none'" in CSP and "base-uri 'none'" in CSP
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"]


async def test_widget_and_assets_have_their_types(http: aiohttp.ClientSession, server: RunningServer) -> None:
    """``/widget.js`` is JavaScript loadable from other sites; assets get their types; HEAD works."""
    status, headers, body = await fetch(http, server, "/widget.js")
    assert status == 200 and "widget" in body
    assert headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["X-Content-Type-Options"] == "nosniff"
    for path, ctype in (
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/agent/app.js", "text/javascript; charset=utf-8"),
        ("/assets/ring.mp3", "audio/mpeg"),
    ):
        status, headers, _ = await fetch(http, server, path)
        assert status == 200 and headers["Content-Type"] == ctype, path
    async with http.head(f"{server.url}/widget.js") as resp:
        assert resp.status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/assets/..%5c..%5csecret.txt",
        "/assets/app.css%00.html",
        "/.env",
        "/assets/%2e/../.env",
        "/assets/escape.txt",
        "/assets/up/secret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
    ],
)
async def test_no_path_leaves_the_web_folder(
    http: aiohttp.ClientSession, server: RunningServer, path: str
) -> None:
    """Traversal attempts, hidden files and symlinks pointing out are 404 (or refused), never the file."""
    status, _, body = await fetch(http, server, path)
    assert status in (400, 404), (path, status)
    assert SECRET not in body and "root:" not in body


async def test_unknown_api_paths_stay_json(http: aiohttp.ClientSession, server: RunningServer) -> None:
    """The page catch-all never answers for ``/api/``: an unknown API path is a JSON ``not_found``."""
    async with http.get(f"{server.url}/api/does-not-exist") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"


async def test_missing_build_says_to_run_make_web(tmp_path: Path) -> None:
    """Without ``web/dist``, ``/agent/`` and ``/widget.js`` answer 503 with a text naming ``make web``;
    the API still works."""
    srv = await start_server(tmp_path / "data", web_dir=str(tmp_path / "nope"))
    try:
        async with aiohttp.ClientSession() as http:
            for path in ("/agent/", "/widget.js"):
                async with http.get(f"{srv.url}{path}") as resp:
                    assert resp.status == 503
                    assert "make web" in await resp.text()
                    assert resp.content_type == "text/plain"
            async with http.get(f"{srv.url}/healthz") as resp:
                assert resp.status == 200
    finally:
        await srv.runner.cleanup()
