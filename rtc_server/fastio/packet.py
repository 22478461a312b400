"""Socket.IO JSON packets that learn whether they are binary from the JSON encoding itself.

python-socketio's ``Packet`` walks every outgoing payload (``data_is_binary``, recursively, with a list
built per dict) before encoding it, to choose between EVENT and BINARY_EVENT. Here an outgoing
EVENT/ACK is JSON-encoded at once; ``bytes`` anywhere in it make the standard encoder raise
``TypeError``, and only then does the packet take python-socketio's binary path. Incoming packets,
explicit binary flags and the other packet types are untouched. Encoding and decoding use
:mod:`signaling.jsonfast` (``orjson`` when installed).

Incoming, the packets of nearly every call (an EVENT in a namespace, with an ack id and a JSON array:
``2/agent,12["message.send",{...}]``) are split with one regular expression instead of
python-socketio's character-by-character decoder; anything else (no namespace, a query in the
namespace, attachments, other packet types, an id of more than 100 digits) takes that decoder, so every
packet decodes, or is refused, as before.
"""

from __future__ import annotations

import re
from typing import Any

from socketio import packet as sio_packet

from signaling import jsonfast

_FAST_TYPES = (sio_packet.EVENT, sio_packet.ACK)

#: An EVENT in a namespace (no query), an optional ack id of at most 100 digits, then a JSON array.
EVENT_HEAD = re.compile(r"2(/[^,?]*),(\d{0,100})(?=\[)")


class FastPacket(sio_packet.Packet):
    """A drop-in ``packet_class`` for the default (JSON) serializer, with :mod:`~signaling.jsonfast`."""

    json = jsonfast

    def __init__(
        self,
        packet_type: int = sio_packet.EVENT,
        data: Any = None,
        namespace: str | None = None,
        id: int | None = None,
        binary: bool | None = None,
        encoded_packet: Any = None,
    ) -> None:
        self._json: str | None = None
        if encoded_packet.__class__ is str:
            head = EVENT_HEAD.match(encoded_packet)
            if head is not None:
                self.packet_type = sio_packet.EVENT
                self.namespace = head.group(1)
                ack_id = head.group(2)
                self.id = int(ack_id) if ack_id else None
                self.attachment_count = 0
                self.attachments: list[Any] = []
                self.data = self.json.loads(encoded_packet[head.end() :])
                return
        elif encoded_packet is None and binary is None and packet_type in _FAST_TYPES:
            try:
                self._json = self.json.dumps(data, separators=(",", ":"))
            except TypeError:  # bytes somewhere (or something JSON cannot carry): the stock path decides
                self._json = None
            else:
                self.packet_type = packet_type
                self.data = data
                self.namespace = namespace
                self.id = id
                self.attachment_count = 0
                self.attachments = []
                return
        super().__init__(packet_type, data, namespace, id, binary, encoded_packet)

    def encode(self) -> Any:
        text = self._json
        if text is None:
            return super().encode()
        out = str(self.packet_type)
        if self.namespace is not None and self.namespace != "/":
            out += self.namespace + ","
        if self.id is not None:
            out += str(self.id)
        if self.data is not None:
            out += text
        return out
