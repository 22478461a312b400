"""Uploads and downloads over REST (``POST /api/uploads``, ``GET /api/uploads/{id}[/thumbnail]``).

Pins: the size cap (exactly the cap passes, one byte more is ``too_large`` and leaves nothing on disk),
the type sniffed from content (HTML claiming to be an image is refused; HTML as a plain file becomes an
``application/octet-stream`` download), safe display names (``../``, NUL, control characters), random
storage names, thumbnails (and none for a decompression bomb), HTTP Range (206, 416), the headers
(Content-Disposition with RFC 5987 ``filename*``, nosniff, private caching), participant-only access and
CORS for the widget.
"""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from rtc_server.http.sniff import content_disposition, safe_name, sniff
from tests.conftest import Hub, RunningServer, start_server

CAP = 256 * 1024


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The real server with a small upload cap, so that cap + 1 is cheap to send."""
    srv = await start_server(tmp_path, upload_max_bytes=CAP)
    yield srv
    await srv.runner.cleanup()


def multipart(*parts: tuple[str, str | None, str | None, bytes]) -> tuple[bytes, str]:
    """A multipart/form-data body built byte by byte: ``(name, filename header value, type, data)``.

    The filename goes into the header as given (quoted unless it already carries ``*=``), so tests can
    send what a hostile client would."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, filename, ctype, data in parts:
        out.write(f"--{boundary}\r\n".encode())
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f"; {filename}" if "*=" in filename else f'; filename="{filename}"'
        out.write(f"Content-Disposition: {disposition}\r\n".encode("utf-8", "surrogateescape"))
        if ctype:
            out.write(f"Content-Type: {ctype}\r\n".encode())
        out.write(b"\r\n")
        out.write(data)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class Uploads:
    """A conversation between customer A and the support team, and HTTP helpers around it."""

    def __init__(self, hub: Hub, conv: dict[str, Any], customer: Any) -> None:
        self.hub = hub
        self.conv = conv
        self.customer = customer
        self.url = hub.server.url

    async def post(
        self,
        token: str | None,
        data: bytes,
        filename: str | None = "f.bin",
        ctype: str | None = "application/octet-stream",
        conversation_id: str | None = None,
        extra: list[tuple[str, str | None, str | None, bytes]] | None = None,
    ) -> tuple[int, Any]:
        fields: list[tuple[str, str | None, str | None, bytes]] = [
            ("conversation_id", None, None, (conversation_id or self.conv["id"]).encode())
        ]
        fields += extra or []
        fields.append(("file", filename, ctype, data))
        body, content_type = multipart(*fields)
        headers = {"Content-Type": content_type}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with self.hub.http.post(f"{self.url}/api/uploads", data=body, headers=headers) as resp:
            return resp.status, await resp.json()

    async def ok(
        self,
        data: bytes,
        filename: str = "f.bin",
        ctype: str = "application/octet-stream",
        token: str | None = None,
    ) -> dict[str, Any]:
        status, body = await self.post(token or self.customer.token, data, filename, ctype)
        assert status == 201, body
        return body["attachment"]

    async def get(
        self, path: str, token: str | None, headers: dict[str, str] | None = None, query: bool = False
    ) -> tuple[int, dict[str, str], bytes]:
        h = dict(headers or {})
        url = f"{self.url}{path}"
        if token and query:
            url += f"?token={token}"
        elif token:
            h["Authorization"] = f"Bearer {token}"
        async with self.hub.http.get(url, headers=h) as resp:
            return resp.status, dict(resp.headers), await resp.read()


@pytest.fixture
async def up(hub: Hub) -> Uploads:
    customer = await hub.customer(name="Ann")
    res = await customer.ok("conversation.start", {"body": "I will send a file"})
    return Uploads(hub, res["conversation"], customer)


def png_bytes(width: int = 800, height: int = 600) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG that declares ``width`` x ``height`` 1-bit pixels (all zero)."""
    raw = zlib.compress(b"\x00" * ((width + 7) // 8 + 1) * height, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def stored_files(server: RunningServer) -> list[str]:
    return sorted(p.name for p in (Path(server.config.data_dir) / "uploads").iterdir())


# -- size cap ---------------------------------------------------------------------------------------------


async def test_exactly_the_cap_is_accepted_and_one_byte_more_is_too_large(
    up: Uploads, server: RunningServer
) -> None:
    """cap bytes -> 201 with that size; cap + 1 -> 413 ``too_large`` and no file (nor ``.part``) left."""
    att = await up.ok(b"a" * CAP, "big.txt", "text/plain")
    assert att["size"] == CAP and att["mime"] == "text/plain" and att["kind"] == "file"
    before = stored_files(server)
    status, body = await up.post(up.customer.token, b"a" * (CAP + 1), "bigger.txt", "text/plain")
    assert status == 413 and body["ok"] is False and body["error"]["code"] == "too_large"
    assert stored_files(server) == before


# -- names ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\\\..\\\\windows\\\\win.ini", "win.ini"),  # quoted-string: \\\\ is one backslash
        ("filename*=UTF-8''..%2F..%2Fsecret%00.txt", "secret.txt"),
        ("filename*=UTF-8''a%00b%01c%1Bd%7F.txt", "abcd.txt"),
        ("..", "file.txt"),
        ("report\u202egnp.txt", "reportgnp.txt"),
    ],
)
async def test_display_names_are_made_safe(
    up: Uploads, server: RunningServer, header: str, expected: str
) -> None:
    """Paths, ``..``, NUL, control and bidi characters are stripped from the shown name; the file on
    disk has a random name that owes nothing to the client's."""
    att = await up.ok(b"hello", header, "text/plain")
    assert att["name"] == expected
    files = stored_files(server)
    assert all(len(name.split(".")[0]) == 32 for name in files)
    assert not any("passwd" in name or "secret" in name for name in files)
    status, headers, _ = await up.get(att["url"], up.customer.token)
    assert status == 200
    assert (
        "\x00" not in headers["Content-Disposition"]
        and "/" not in headers["Content-Disposition"].split(";")[1]
    )


async def test_raw_control_characters_in_part_headers_are_invalid(up: Uploads) -> None:
    """A raw NUL or control byte in a part's header is a malformed body: ``invalid``, not a crash."""
    for raw in ("a\x00b.txt", "a\x01b.txt"):
        status, body = await up.post(up.customer.token, b"hello", raw, "text/plain")
        assert status == 400 and body["error"]["code"] == "invalid"


def test_safe_name_caps_length_and_keeps_extension() -> None:
    """A 1,000-character name is cut to 180 characters and keeps its extension."""
    name = safe_name("x" * 1000 + ".pdf", "application/pdf")
    assert len(name) == 180 and name.endswith(".pdf")


def test_content_disposition_has_rfc5987_filename() -> None:
    """Non-ASCII names go in ``filename*`` (percent-encoded UTF-8) with an ASCII fallback."""
    value = content_disposition("attachment", 'résumé "été".pdf')
    assert value.startswith('attachment; filename="resume _ete_.pdf"')
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22%C3%A9t%C3%A9%22.pdf" in value


# -- sniffing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", "video/mp4"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "audio/mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
        (b"OggS\x00\x02" + b"\x00" * 22 + b"OpusHead", "audio/ogg"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "audio/mpeg"),
        (b"\xff\xfb\x90\x64\x00", "audio/mpeg"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"PK\x03\x04\x14\x00", "application/zip"),
        ("Grüße, plain text\n".encode(), "text/plain"),
        (b"<!DOCTYPE html><html><script>alert(1)</script>", "application/octet-stream"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "application/octet-stream"),
        (b"\x7fELF\x02\x01\x01\x00", "application/octet-stream"),
    ],
)
def test_sniff_recognises_the_allow_list(head: bytes, mime: str) -> None:
    """Each allow-listed type is recognised by its magic bytes; markup and binaries are not."""
    assert sniff(head) == mime


async def test_html_claiming_to_be_an_image_is_refused(up: Uploads, server: RunningServer) -> None:
    """HTML or SVG sent as ``cat.png`` / ``image/*`` (or with ``kind=image``) is ``invalid``; nothing is stored."""
    html = b"<html><body><script>alert(document.cookie)</script></body></html>"
    before = stored_files(server)
    status, body = await up.post(up.customer.token, html, "cat.png", "image/png")
    assert status == 400 and body["error"]["code"] == "invalid"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
    status, body = await up.post(up.customer.token, svg, "logo.svg", "image/svg+xml")
    assert status == 400 and body["error"]["code"] == "invalid"
    status, body = await up.post(
        up.customer.token, html, "x.bin", "application/octet-stream", extra=[("kind", None, None, b"image")]
    )
    assert status == 400 and body["error"]["code"] == "invalid"
    assert stored_files(server) == before


async def test_html_as_a_plain_file_is_only_ever_a_download(up: Uploads) -> None:
    """HTML uploaded as a file is stored as ``application/octet-stream`` and served as an attachment
    with ``nosniff`` and a sandbox CSP, never inline as HTML."""
    att = await up.ok(b"<html><script>alert(1)</script></html>", "page.html", "text/html")
    assert att["mime"] == "application/octet-stream" and att["kind"] == "file"
    status, headers, _ = await up.get(att["url"], up.customer.token)
    assert status == 200
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"].startswith("attachment;")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in headers["Content-Security-Policy"]


# -- thumbnails -------------------------------------------------------------------------------------------


async def test_image_gets_a_thumbnail_at_most_320px(up: Uploads) -> None:
    """An 800x600 PNG is an ``image`` with a thumbnail no larger than 320 px, served inline."""
    att = await up.ok(png_bytes(), "photo.png", "image/png")
    assert att["kind"] == "image" and att["mime"] == "image/png"
    assert att["thumbnail_url"] == f"/api/uploads/{att['id']}/thumbnail"
    status, headers, data = await up.get(att["thumbnail_url"], up.customer.token)
    assert status == 200 and headers["Content-Type"].startswith("image/")
    assert headers["Content-Disposition"].startswith("inline;")
    with Image.open(io.BytesIO(data)) as thumb:
        assert max(thumb.size) <= 320 and thumb.size[0] == 320


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
async def test_decompression_bomb_is_stored_without_a_thumbnail(up: Uploads) -> None:
    """A small PNG declaring 100 million pixels is accepted but never decoded for a thumbnail."""
    data = bomb_png(10_000, 10_000)
    assert len(data) < CAP
    att = await up.ok(data, "bomb.png", "image/png")
    assert att["kind"] == "image" and "thumbnail_url" not in att
    status, _, body = await up.get(f"/api/uploads/{att['id']}/thumbnail", up.customer.token)
    assert status == 404 and b"not_found" in body


# -- downloads --------------------------------------------------------------------------------------------


async def test_range_requests(up: Uploads) -> None:
    """``Range`` gives 206 with ``Content-Range``; a range past the end gives 416 ``bytes */size``."""
    data = b"%PDF-1.4\n" + bytes(range(256)) * 4
    att = await up.ok(data, "doc.pdf", "application/pdf")
    status, headers, body = await up.get(att["url"], up.customer.token, {"Range": "bytes=10-19"})
    assert status == 206 and body == data[10:20]
    assert headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert headers["Accept-Ranges"] == "bytes"
    status, headers, body = await up.get(att["url"], up.customer.token, {"Range": "bytes=-5"})
    assert status == 206 and body == data[-5:]
    status, headers, _ = await up.get(att["url"], up.customer.token, {"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"
    status, headers, body = await up.get(att["url"], up.customer.token)
    assert status == 200 and body == data


async def test_download_headers(up: Uploads) -> None:
    """Media inline, other files as attachments; RFC 5987 name; nosniff; private caching."""
    att = await up.ok(b"%PDF-1.4\nhello", "Résumé 2024.pdf", "application/pdf")
    status, headers, _ = await up.get(att["url"], up.customer.token)
    assert status == 200 and headers["Content-Type"] == "application/pdf"
    assert headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9%202024.pdf" in headers["Content-Disposition"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"].startswith("private")
    img = await up.ok(png_bytes(40, 40), "p.png", "image/png")
    status, headers, _ = await up.get(img["url"], up.customer.token)
    assert headers["Content-Disposition"].startswith("inline;") and headers["Content-Type"] == "image/png"


async def test_only_participants_can_upload_and_download(up: Uploads, hub: Hub) -> None:
    """The customer and the team's agents read (header or ``?token=``); another customer and an agent of
    another team get ``not_found``; no token is ``unauthorized``; outsiders cannot upload either."""
    att = await up.ok(b"%PDF-1.4\nprivate", "private.pdf", "application/pdf")
    bob = (await hub.login("bob@example.com"))["token"]
    carol = (await hub.login("carol@example.com"))["token"]
    other = (await hub.visitor(name="Mallory"))["token"]
    assert (await up.get(att["url"], up.customer.token))[0] == 200
    assert (await up.get(att["url"], bob))[0] == 200
    assert (await up.get(att["url"], bob, query=True))[0] == 200
    for token in (other, carol):
        status, _, body = await up.get(att["url"], token)
        assert status == 404 and b'"not_found"' in body
        status, _, _ = await up.get(att["url"], token, query=True)
        assert status == 404
    status, _, body = await up.get(att["url"], None)
    assert status == 401 and b'"unauthorized"' in body
    status, _, _ = await up.get(att["url"], "forged.token")
    assert status == 401
    for token in (other, carol):
        status, body = await up.post(token, b"hello", "x.txt", "text/plain")
        assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await up.post(None, b"hello", "x.txt", "text/plain")
    assert status == 401


async def test_agent_upload_then_message_send(up: Uploads, hub: Hub) -> None:
    """An agent of the team uploads an image, sends it as an ``image`` message, and the customer
    receives the attachment shape with its urls."""
    bob = await hub.agent("bob@example.com")
    token = (await hub.login("bob@example.com"))["token"]
    att = await up.ok(png_bytes(64, 48), "shot.png", "image/png", token=token)
    sent = await bob.ok(
        "message.send",
        {"conversation_id": up.conv["id"], "client_id": "img1", "kind": "image", "attachment_id": att["id"]},
    )
    assert sent["message"]["attachment"]["url"] == att["url"]
    got = await up.customer.events.wait("message.new", lambda d: d["message"]["client_id"] == "img1")
    assert got["message"]["attachment"]["thumbnail_url"] == att["thumbnail_url"]


async def test_malformed_uploads_are_invalid(up: Uploads) -> None:
    """No multipart, no file, no conversation id, an unknown field: each is ``invalid``."""
    url = f"{up.url}/api/uploads"
    auth = {"Authorization": f"Bearer {up.customer.token}"}
    async with up.hub.http.post(url, json={"conversation_id": up.conv["id"]}, headers=auth) as resp:
        assert resp.status == 400
    for parts in (
        [("conversation_id", None, None, up.conv["id"].encode())],
        [("file", "a.txt", "text/plain", b"x")],
        [
            ("conversation_id", None, None, up.conv["id"].encode()),
            ("evil", None, None, b"1"),
            ("file", "a.txt", "text/plain", b"x"),
        ],
    ):
        body, ctype = multipart(*parts)
        async with up.hub.http.post(url, data=body, headers={**auth, "Content-Type": ctype}) as resp:
            assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid"


async def test_cors_for_the_widget(up: Uploads) -> None:
    """Preflight on uploads answers 204 echoing the origin; the actual answers (errors too) carry it."""
    origin = "https://shop.example"
    async with up.hub.http.options(
        f"{up.url}/api/uploads",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    ) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == origin
        assert "authorization" in resp.headers["Access-Control-Allow-Headers"].lower()
    att = await up.ok(b"%PDF-1.4\n", "a.pdf", "application/pdf")
    status, headers, _ = await up.get(att["url"], up.customer.token, {"Origin": origin})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == origin
    assert "Content-Disposition" in headers["Access-Control-Expose-Headers"]
    status, headers, _ = await up.get(att["url"], None, {"Origin": origin})
    assert status == 401 and headers["Access-Control-Allow-Origin"] == origin
    async with up.hub.http.post(f"{up.url}/api/visitors", json={}, headers={"Origin": origin}) as resp:
        assert resp.status == 201 and resp.headers["Access-Control-Allow-Origin"] == origin
    async with up.hub.http.get(f"{up.url}/api/agents", headers={"Origin": origin}) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers
