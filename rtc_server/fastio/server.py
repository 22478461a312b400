"""The Socket.IO server class the composition root uses: python-socketio's ``AsyncServer`` on the lean
Engine.IO server of :mod:`rtc_server.fastio.engine`, with acks and single-socket packets written
straight to the websocket."""

from __future__ import annotations

from typing import Any

import socketio

from rtc_server.fastio import frames
from rtc_server.fastio.engine import FastEngineServer
from rtc_server.fastio.packet import FastPacket


class FastAsyncServer(socketio.AsyncServer):
    """A standard Socket.IO v4 server (same options, same events, any official client) with less
    per-packet machinery; see ``docs/architecture.md``, "The hub's fast path"."""

    packet_class: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.packet_class is socketio.packet.Packet:  # the default JSON serializer
            self.packet_class = FastPacket
            # python-socketio's __init__ gave the manager the old packet class's JSON module (the standard
            # json): give it FastPacket's, as set_server means it to have the server's.
            self.manager.set_server(self)

    def _engineio_server_class(self) -> type:
        return FastEngineServer

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        """Encode once; a websocket session gets the frame directly, anything else python-socketio's way."""
        encoded = pkt.encode()
        if isinstance(encoded, str):
            socket = self.eio.sockets.get(eio_sid)
            write_frame = getattr(socket, "write_frame", None)
            if write_frame is not None and write_frame(frames.frame("4" + encoded)):
                return
            await self.eio.send(eio_sid, encoded)
            return
        for part in encoded:
            await self.eio.send(eio_sid, part)
