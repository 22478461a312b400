"""Attachments: ``POST /api/uploads`` (multipart, streamed to disk under a size cap, type sniffed from
the content, thumbnails for images) and the participant-only downloads with HTTP Range.

Files live under ``<data_dir>/uploads/`` with random names; the display name is only ever metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
from pathlib import Path
from typing import IO

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from rtc_server.app import CONFIG, SERVICES
from rtc_server.http.core import principal
from rtc_server.http.sniff import (
    SNIFF_BYTES,
    THUMBNAIL_MIMES,
    content_disposition,
    declared_kind,
    kind_of,
    safe_name,
    sniff,
)
from signaling.domain.errors import Invalid, NotFound, TooLarge
from signaling.domain.models import ATTACHMENT_KINDS, Attachment, new_id
from signaling.services.timeline import Timeline

log = logging.getLogger(__name__)

THUMBNAIL_MAX_PX = 320
#: Images with more pixels than this get no thumbnail (a decompression bomb stays a small file); JPEGs
#: are counted after decoding at a reduced scale (``draft``), other types as they are.
THUMBNAIL_MAX_PIXELS = 25_000_000
#: Declared sizes above this are not even given to the decoder.
DECLARED_MAX_PIXELS = 80_000_000
CHUNK_BYTES = 64 * 1024
WRITE_BATCH_BYTES = 512 * 1024
FIELD_MAX_BYTES = 1024
#: Room for the form's other fields and part headers when judging a body by its Content-Length.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
_STORAGE_NAME = re.compile(r"[0-9a-f]{32}")


class UploadDir:
    """The folder of stored uploads and the paths inside it (never built from client input)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, storage_name: str) -> Path:
        if not _STORAGE_NAME.fullmatch(storage_name):
            raise NotFound("no such upload")
        return self.root / storage_name

    def thumbnail(self, storage_name: str) -> Path:
        return self.path(storage_name).with_suffix(".thumb")

    @staticmethod
    def new_name() -> str:
        return secrets.token_hex(16)


UPLOAD_DIR = web.AppKey("upload_dir", UploadDir)


class _Staged:
    """A file being received: written to ``<name>.part``, renamed to ``<name>`` once accepted."""

    def __init__(self, folder: UploadDir) -> None:
        self.folder = folder
        self.name = folder.new_name()
        self.part = folder.path(self.name).with_suffix(".part")
        self.size = 0
        self.head = b""
        self.filename: str | None = None
        self.content_type: str | None = None

    async def receive(self, part: BodyPartReader, cap: int) -> None:
        """Stream ``part`` to disk; ``too_large`` as soon as it exceeds ``cap`` bytes."""
        self.filename = part.filename
        self.content_type = part.headers.get("Content-Type")
        loop = asyncio.get_running_loop()
        fh: IO[bytes] = await loop.run_in_executor(None, self._open)
        try:
            pending: list[bytes] = []
            pending_size = 0
            while chunk := await part.read_chunk(CHUNK_BYTES):
                self.size += len(chunk)
                if self.size > cap:
                    raise TooLarge(f"the file is larger than {cap} bytes", limit=cap)
                if len(self.head) < SNIFF_BYTES:
                    self.head += chunk[: SNIFF_BYTES - len(self.head)]
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= WRITE_BATCH_BYTES:
                    await loop.run_in_executor(None, fh.write, b"".join(pending))
                    pending, pending_size = [], 0
            if pending:
                await loop.run_in_executor(None, fh.write, b"".join(pending))
        finally:
            await loop.run_in_executor(None, fh.close)

    def _open(self) -> IO[bytes]:
        fd = os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return os.fdopen(fd, "wb")

    def commit(self) -> Path:
        final = self.folder.path(self.name)
        os.replace(self.part, final)
        return final

    def discard(self) -> None:
        for path in (self.part, self.folder.path(self.name), self.folder.thumbnail(self.name)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


async def _read_field(part: BodyPartReader) -> str:
    data = b""
    while chunk := await part.read_chunk(FIELD_MAX_BYTES):
        data += chunk
        if len(data) > FIELD_MAX_BYTES:
            raise Invalid(f"the field {part.name} is too long", field=part.name or "")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise Invalid(f"the field {part.name} is not UTF-8", field=part.name or "") from None


def make_thumbnail(src: Path, dst: Path) -> bool:
    """Write a thumbnail of the image ``src`` (at most 320 px a side, first frame) to ``dst``; False
    when Pillow cannot read it or it is too large to decode (:data:`THUMBNAIL_MAX_PIXELS`)."""
    from PIL import Image, ImageOps, features

    try:
        with Image.open(src, formats=["PNG", "JPEG", "GIF", "WEBP"]) as im:
            width, height = im.size
            if width <= 0 or height <= 0 or width * height > DECLARED_MAX_PIXELS:
                return False
            im.draft("RGB", (THUMBNAIL_MAX_PX, THUMBNAIL_MAX_PX))
            if im.size[0] * im.size[1] > THUMBNAIL_MAX_PIXELS:
                return False
            frame = ImageOps.exif_transpose(im) or im
            frame.thumbnail((THUMBNAIL_MAX_PX, THUMBNAIL_MAX_PX))
            alpha = frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info)
            frame = frame.convert("RGBA" if alpha else "RGB")
            tmp = dst.with_suffix(".thumbpart")
            if features.check("webp"):
                frame.save(tmp, format="WEBP", quality=80)
            else:
                frame.save(tmp, format="PNG", optimize=True)
            os.replace(tmp, dst)
            return True
    except Exception as exc:  # any unreadable image: no thumbnail, the upload still stands
        log.info("no thumbnail for %s: %s", src.name, exc)
        with contextlib.suppress(FileNotFoundError):
            dst.with_suffix(".thumbpart").unlink()
        return False


async def upload(request: web.Request) -> web.Response:
    """``POST /api/uploads``: multipart ``conversation_id`` + ``file`` (+ optional ``kind``)."""
    who = await principal(request)
    services = request.app[SERVICES]
    cap = request.app[CONFIG].upload_max_bytes
    folder = request.app[UPLOAD_DIR]
    if not request.content_type.startswith("multipart/form-data"):
        raise Invalid("the body must be multipart/form-data with conversation_id and file")
    if request.content_length is not None and request.content_length > cap + MULTIPART_OVERHEAD_BYTES:
        raise TooLarge(f"the file is larger than {cap} bytes", limit=cap)  # known before reading a byte
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError):
        raise Invalid("malformed multipart body") from None
    conversation_id = ""
    wanted_kind = ""
    staged: _Staged | None = None
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise Invalid("nested multipart bodies are not accepted")
            if part.name == "file":
                if staged is not None:
                    raise Invalid("one file per upload", field="file")
                if conversation_id:  # refuse before receiving the bytes when we can
                    await services.timeline.conversation_for(who, conversation_id)
                staged = _Staged(folder)
                await staged.receive(part, cap)
            elif part.name == "conversation_id":
                conversation_id = await _read_field(part)
            elif part.name == "kind":
                wanted_kind = await _read_field(part)
            else:
                raise Invalid(f"unknown field {str(part.name)[:40]!r}", field=str(part.name)[:40])
        if not conversation_id:
            raise Invalid("conversation_id is required", field="conversation_id")
        if staged is None:
            raise Invalid("file is required", field="file")
        if wanted_kind and wanted_kind not in ATTACHMENT_KINDS:
            raise Invalid(f"kind must be one of {', '.join(ATTACHMENT_KINDS)}", field="kind")
        conv = await services.timeline.conversation_for(who, conversation_id)
        mime = sniff(staged.head)
        kind = kind_of(mime)
        claimed = (
            wanted_kind
            if wanted_kind and wanted_kind != "file"
            else declared_kind(staged.filename, staged.content_type)
        )
        if claimed in ("image", "video", "audio") and kind == "file":
            raise Invalid(f"the content is not a supported {claimed} file", field="file", sniffed=mime)
        stored = staged.commit()
        has_thumbnail = False
        if mime in THUMBNAIL_MIMES:
            has_thumbnail = await asyncio.to_thread(make_thumbnail, stored, folder.thumbnail(staged.name))
        attachment = Attachment(
            id=new_id("at"),
            conversation_id=conv.id,
            uploader_kind=who.kind,
            uploader_id=who.id,
            name=safe_name(staged.filename, mime),
            mime=mime,
            size=staged.size,
            storage_name=staged.name,
            kind=kind,
            has_thumbnail=has_thumbnail,
        )
        attachment = await services.store.create_attachment(attachment)
    except HttpProcessingError:
        if staged is not None:
            await asyncio.to_thread(staged.discard)
        raise Invalid("malformed multipart body") from None
    except BaseException:
        if staged is not None:
            await asyncio.shield(asyncio.to_thread(staged.discard))
        raise
    return web.json_response({"attachment": attachment.to_wire()}, status=201)


async def _readable(request: web.Request) -> Attachment:
    """The attachment of the URL if the caller takes part in its conversation (``not_found`` else)."""
    who = await principal(request)
    store = request.app[SERVICES].store
    attachment = await store.get_attachment(request.match_info["id"])
    if attachment is None:
        raise NotFound("no such upload")
    conv = await store.get_conversation(attachment.conversation_id)
    if conv is None or not Timeline.may_access(who, conv):
        raise NotFound("no such upload")
    return attachment


def _file_response(path: Path, mime: str, disposition: str, name: str) -> web.FileResponse:
    if not path.is_file():
        raise NotFound("the file of this upload is gone")
    content_type = f"{mime}; charset=utf-8" if mime == "text/plain" else mime
    return web.FileResponse(
        path,
        chunk_size=256 * 1024,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": content_disposition(disposition, name),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=3600",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )


async def download(request: web.Request) -> web.StreamResponse:
    """``GET /api/uploads/{id}``: the file, inline for media, as a download otherwise; Range supported."""
    attachment = await _readable(request)
    path = request.app[UPLOAD_DIR].path(attachment.storage_name)
    disposition = "inline" if attachment.kind in ("image", "video", "audio") else "attachment"
    return _file_response(path, attachment.mime, disposition, attachment.name)


async def thumbnail(request: web.Request) -> web.StreamResponse:
    """``GET /api/uploads/{id}/thumbnail``: a small image (WebP or PNG) of an image upload."""
    attachment = await _readable(request)
    if not attachment.has_thumbnail:
        raise NotFound("this upload has no thumbnail")
    path = request.app[UPLOAD_DIR].thumbnail(attachment.storage_name)
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except FileNotFoundError:
        raise NotFound("the thumbnail of this upload is gone") from None
    mime = sniff(head)
    stem = attachment.name.rsplit(".", 1)[0] or "thumbnail"
    return _file_response(path, mime, "inline", f"{stem}.{mime.rsplit('/', 1)[-1]}")


def setup(app: web.Application) -> None:
    """Register the upload routes and the uploads folder."""
    folder = UploadDir(Path(app[CONFIG].data_dir) / "uploads")
    folder.ensure()
    app[UPLOAD_DIR] = folder
    app.router.add_post("/api/uploads", upload)
    app.router.add_get("/api/uploads/{id}", download)
    app.router.add_get("/api/uploads/{id}/thumbnail", thumbnail)
