"""Recordings over REST: ``GET /api/requests/{id}/recording``.

A recording (:mod:`rtc_server.media.recording`) is served to the agents who may see the request's
conversation (its team, its assignee, admins), like the conversation itself; a customer, a guest, or
an agent outside the conversation gets ``not_found``, as for a request that was not recorded or whose
file is not finished yet. The token may come as ``Authorization: Bearer`` or ``?token=`` (a plain link
in the console).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from rtc_server.app import CONFIG, SERVICES
from rtc_server.http.core import principal
from rtc_server.http.sniff import content_disposition
from rtc_server.media.recording import recording_path
from signaling.domain.errors import NotFound


async def download_recording(request: web.Request) -> web.StreamResponse:
    """``GET /api/requests/{id}/recording``: the WebM file, as a download; Range supported."""
    who = await principal(request)
    recorded = await request.app[SERVICES].requests.recording_of(who, request.match_info["id"])
    try:
        path: Path = recording_path(request.app[CONFIG].recordings_dir, recorded.id)
    except ValueError:
        raise NotFound("no such recording") from None
    if not path.is_file():
        raise NotFound("no recording for this request (yet)")
    return web.FileResponse(
        path,
        chunk_size=256 * 1024,
        headers={
            "Content-Type": "video/webm",
            "Content-Disposition": content_disposition("attachment", f"recording-{recorded.id}.webm"),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


def setup(app: web.Application) -> None:
    """Register the recording route."""
    app.router.add_get("/api/requests/{id}/recording", download_recording)
