"""What an uploaded file really is, and how to name it safely.

The type comes from the content's first bytes (magic numbers), never from the name or the client's
``Content-Type``. Only the allow-listed types below are served with their own type; anything else is
an ``application/octet-stream`` download. Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

#: How many leading bytes :func:`sniff` looks at.
SNIFF_BYTES = 8192
#: Longest display name kept (characters), extension included.
MAX_NAME_CHARS = 180
OCTET_STREAM = "application/octet-stream"

#: Every type an upload may be served as (besides ``application/octet-stream``).
ALLOWED_MIMES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "audio/ogg",
    "audio/mpeg",
    "audio/wav",
    "audio/mp4",
    "application/pdf",
    "application/zip",
    "text/plain",
)
#: Image types Pillow may read to make a thumbnail.
THUMBNAIL_MIMES = ("image/png", "image/jpeg", "image/gif", "image/webp")

_EXTENSION_KINDS = {
    **dict.fromkeys(
        ("png", "jpg", "jpeg", "gif", "webp", "svg", "bmp", "ico", "avif", "heic", "tif", "tiff"), "image"
    ),
    **dict.fromkeys(("mp4", "m4v", "webm", "mov", "mkv", "avi", "ogv"), "video"),
    **dict.fromkeys(("mp3", "wav", "ogg", "oga", "opus", "m4a", "aac", "flac", "weba"), "audio"),
}
_MARKUP = re.compile(
    rb"<\s*(!doctype|html|head|body|script|svg|iframe|object|embed|style|meta|link|img|a\s|div|form|\?xml"
    rb"|!--|math|xsl)",
    re.IGNORECASE,
)
_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B ")
_IMAGE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1", b"avif", b"avis")


def kind_of(mime: str) -> str:
    """``image``, ``video``, ``audio`` or ``file`` for a sniffed type."""
    major = mime.split("/", 1)[0]
    return major if major in ("image", "video", "audio") else "file"


def sniff(head: bytes) -> str:
    """The allow-listed type of content starting with ``head``, or ``application/octet-stream``."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(head) >= 12 and head.startswith(b"RIFF"):
        form = head[8:12]
        if form == b"WEBP":
            return "image/webp"
        if form == b"WAVE":
            return "audio/wav"
        return OCTET_STREAM
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AUDIO_BRANDS:
            return "audio/mp4"
        if brand in _IMAGE_BRANDS or brand.startswith(b"qt"):
            return OCTET_STREAM
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in head[:64] else OCTET_STREAM
    if head.startswith(b"OggS"):
        page = head[:512]
        if b"OpusHead" in page or b"\x01vorbis" in page or b"\x7fFLAC" in page or b"Speex" in page:
            return "audio/ogg"
        if b"\x80theora" in page:
            return "video/ogg"
        return OCTET_STREAM
    if head.startswith(b"ID3") or _is_mp3_frame(head):
        return "audio/mpeg"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "application/zip"
    if _is_plain_text(head):
        return "text/plain"
    return OCTET_STREAM


def _is_mp3_frame(head: bytes) -> bool:
    """An MPEG-1/2/2.5 Layer III frame header (sync word, layer bits ``01``, sane bitrate/rate)."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0x3
    layer = (head[1] >> 1) & 0x3
    bitrate = head[2] >> 4
    rate = (head[2] >> 2) & 0x3
    return version != 1 and layer == 1 and bitrate not in (0, 15) and rate != 3


def _is_plain_text(head: bytes) -> bool:
    """UTF-8 (a multi-byte character cut at the end of ``head`` allowed) without NUL or control
    characters, and not markup a browser could render (HTML, SVG, XML)."""
    if not head:
        return True
    if b"\x00" in head:
        return False
    body = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(body) - 3 or len(head) < SNIFF_BYTES:
            return False
        decoded = body[: exc.start].decode("utf-8")
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r\f" for c in decoded):
        return False
    return _MARKUP.search(body[:1024]) is None


def declared_kind(filename: str | None, content_type: str | None) -> str | None:
    """What the client claims a file is (``image``/``video``/``audio``) from its name or type, if any."""
    if content_type:
        major = content_type.split("/", 1)[0].strip().lower()
        if major in ("image", "video", "audio"):
            return major
    if filename and "." in filename:
        return _EXTENSION_KINDS.get(filename.rsplit(".", 1)[1].lower())
    return None


_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/webm": "webm",
    "video/ogg": "ogv",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/mp4": "m4a",
    "application/pdf": "pdf",
    "application/zip": "zip",
    "text/plain": "txt",
}


def safe_name(raw: str | None, mime: str) -> str:
    """A display name safe to show and to put in a header: no directories (``/``, ``\\``, ``..``), no
    NUL, control or bidi-override characters, NFC, at most :data:`MAX_NAME_CHARS` characters with the
    extension kept. Empty: ``file.<ext>`` of the sniffed type."""
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(
        " " if c.isspace() else c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs")
    )
    name = re.sub(r"\s+", " ", name).strip(" .")
    if not name or set(name) <= {"."}:
        name = "file." + _EXTENSIONS.get(mime, "bin")
    if len(name) > MAX_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10 and stem:
            name = stem[: MAX_NAME_CHARS - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            name = name[:MAX_NAME_CHARS].rstrip(" .")
    return name


def content_disposition(disposition: str, name: str) -> str:
    """``inline``/``attachment`` with an ASCII ``filename`` fallback and the exact UTF-8 name in
    ``filename*`` (RFC 6266 / RFC 5987)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ascii_name = re.sub(r'["\\\x00-\x1f\x7f;]', "_", ascii_name).strip() or "file"
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
