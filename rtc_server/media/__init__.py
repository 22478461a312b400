"""The media plane: aiortc peers on the server that forward media between participants (an SFU, no
re-encoding) and relay co-browsing events over data channels.

Modules, one concept each:

- :mod:`~rtc_server.media.gateway`: ``AiortcMediaGateway``, the ``MediaGateway`` port's implementation;
- :mod:`~rtc_server.media.session`: one session per request, who receives what, when it ends;
- :mod:`~rtc_server.media.peer`: one participant's peer connection, negotiation and renegotiation;
- :mod:`~rtc_server.media.forwarding`: encoded frames fanned out to bounded per-subscriber queues;
- :mod:`~rtc_server.media.aiortc_adapter`: the only code touching aiortc 1.16.0 internals (pinned);
- :mod:`~rtc_server.media.rtp_fastpath`: per-packet forwarding work (shared payloads, in-place SRTP,
  GSO sends, NACK history);
- :mod:`~rtc_server.media.recording`: recorded sessions muxed with PyAV, and their retention;
- :mod:`~rtc_server.media.sdp`: SDP rewrites (mDNS candidates, Opus/VP8 only, renumbering);
- :mod:`~rtc_server.media.cobrowse`, :mod:`~rtc_server.media.chunks`, :mod:`~rtc_server.media.masking`:
  the co-browse relay, its chunk envelope and the server-side masking policy.

What a browser client does (through the hub's ``rtc.offer`` / ``rtc.answer`` events):

1. Create ``new RTCPeerConnection({iceServers})`` (``iceServers`` from the hub), add what the request
   kind needs (below), ``createOffer()``, ``setLocalDescription()``, **wait until ICE gathering is
   complete** (no trickle: the offer must carry its candidates), then emit
   ``rtc.offer {request_id, sdp, type: "offer"}`` and apply the ``{sdp, type: "answer"}`` of the ack.
   Offer Opus and VP8 (browsers do by default); a video section without VP8 is refused (``invalid``).
2. Per kind:

   - ``call``: ``addTransceiver(micTrack, {direction: "sendrecv"})``; the other side's audio arrives
     on the same transceiver.
   - ``video``: the same with the camera track too (``sendrecv`` audio and video).
   - ``desktop``: the customer ``addTransceiver(screenTrack, {direction: "sendonly"})``; the agent
     ``addTransceiver("video", {direction: "recvonly"})``.
   - ``show_screen``: the other way round (the agent sends its screen ``sendonly``, the customer offers
     ``recvonly`` video).
   - ``conference``: ``sendrecv`` (or ``sendonly``) audio and video for one's own media; the server
     only receives on them and sends every other participant's tracks on transceivers it adds.
   - ``cobrowse``: ``createDataChannel("cobrowse")`` (ordered, reliable), no media; see
     :mod:`~rtc_server.media.cobrowse` for the messages and :mod:`~rtc_server.media.chunks` for the
     chunk envelope (and its optional gzip encoding; an agent announces ``{"t": "hello", "enc":
     ["gzip"]}`` when its channel opens to receive large events compressed).

   A client that did not offer a transceiver the server needs (an agent who offered nothing to
   receive a screen, every conference participant) gets it through renegotiation.
3. On the server event ``rtc.offer {request_id, sdp, type: "offer", streams}``:
   ``setRemoteDescription(offer)``, ``setLocalDescription()`` (the answer), emit
   ``rtc.answer {request_id, sdp: pc.localDescription.sdp, type: "answer"}``. Each forwarded track's
   ``msid`` stream id is ``<participant kind>-<participant id>`` (``streams`` maps it to
   ``{kind, id, name}``), so ``ontrack``'s ``event.streams[0].id`` tells whose media it is. A track whose
   transceiver turns ``inactive`` belongs to a participant who left.
4. Glare: the server is the impolite peer. If the client's ``rtc.offer`` is refused with ``conflict``
   (``details.reason == "glare"``), a server offer is on its way: answer it (``setRemoteDescription``
   rolls the client's own offer back), then send the client's offer again.
5. A new ``RTCPeerConnection`` (page reload, recovery) simply offers again: the server replaces the
   participant's peer. Closing the peer connection, or the hub's leave, ends the participant's part.
"""
