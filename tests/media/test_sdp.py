"""SDP rewrites: mDNS candidates stripped, codecs restricted to Opus/VP8, and server offers renumbered
to the client's payload types and header-extension ids (so a browser accepts renegotiation)."""

from __future__ import annotations

import re

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from rtc_server.media.sdp import (
    SdpDialect,
    SdpError,
    ice_ufrag,
    restrict_codecs,
    rewrite_server_offer,
    strip_mdns_candidates,
)
from tests.media.chrome_offer import CHROME_OFFER


def rtpmaps(sdp: str) -> dict[int, str]:
    return {int(pt): name for pt, name in re.findall(r"a=rtpmap:(\d+) ([^/]+)/", sdp)}


def sections(sdp: str) -> list[str]:
    return sdp.split("m=")[1:]


def test_mdns_candidates_are_stripped() -> None:
    """``.local`` host candidates go, IP candidates stay."""
    out = strip_mdns_candidates(CHROME_OFFER)
    assert ".local" not in out
    assert "192.0.2.2 54322 typ host" in out


def test_codecs_are_restricted_to_opus_and_vp8_with_rtx() -> None:
    """Only Opus (audio) and VP8 + its RTX (video) remain, with their fmtp/rtcp-fb lines."""
    out = restrict_codecs(CHROME_OFFER)
    audio, video, application = sections(out)
    assert audio.splitlines()[0].endswith("SAVPF 111")
    assert rtpmaps(audio) == {111: "opus"}
    assert video.splitlines()[0].endswith("SAVPF 96 97")
    assert rtpmaps(video) == {96: "VP8", 97: "rtx"}
    assert "a=fmtp:97 apt=96" in video and "VP9" not in video and "a=rtcp-fb:98" not in video
    assert "a=rtcp-fb:96 nack pli" in video
    assert "webrtc-datachannel" in application


def test_offer_without_vp8_is_refused() -> None:
    """A video section offering H264 only cannot be forwarded."""
    h264_only = CHROME_OFFER.replace("a=rtpmap:96 VP8/90000", "a=rtpmap:96 H263/90000")
    with pytest.raises(SdpError):
        restrict_codecs(h264_only)


@pytest.mark.parametrize("garbage", ["", "hello", "v=0\r\nm=audio\r\n", None])
def test_garbage_is_an_sdp_error(garbage: object) -> None:
    """Anything that is not an SDP description raises SdpError (the gateway maps it to ``invalid``)."""
    with pytest.raises(SdpError):
        restrict_codecs(garbage)  # type: ignore[arg-type]


def test_dialect_learns_the_client_numbering() -> None:
    """Payload types and extension ids are learned from the client's offer."""
    dialect = SdpDialect()
    dialect.learn(CHROME_OFFER)
    assert dialect.payload_types == {"opus": 111, "vp8": 96, "rtx": 97}
    assert dialect.extension_id("urn:ietf:params:rtp-hdrext:sdes:mid", 1) == 4
    assert dialect.extension_id("urn:ietf:params:rtp-hdrext:ssrc-audio-level", 2) == 1
    # an unknown extension gets a free id, not one the client uses
    assert dialect.extension_id("urn:example:new", 1) not in {1, 2, 3, 4, 14}


def test_unseen_codec_gets_a_payload_type_the_client_does_not_use() -> None:
    """An audio-only client that later receives video gets a VP8 number free in its bundle."""
    dialect = SdpDialect()
    dialect.learn(CHROME_OFFER.replace("VP8/90000", "VP7/90000"))
    assert dialect.payload_type("vp8") not in {
        111,
        63,
        9,
        0,
        8,
        13,
        110,
        126,
        96,
        97,
        98,
        99,
        100,
        101,
        45,
        46,
    }


async def test_server_reoffer_keeps_the_client_numbering() -> None:
    """aiortc answers the (restricted) Chrome offer, then re-offers with a new video transceiver:
    after the rewrite every section uses Chrome's numbers and no number means two codecs."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        offer = restrict_codecs(strip_mdns_candidates(CHROME_OFFER))
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        for transceiver in pc.getTransceivers():
            wanted = ("audio/opus",) if transceiver.kind == "audio" else ("video/vp8", "video/rtx")
            caps = RTCRtpSender.getCapabilities(transceiver.kind).codecs
            transceiver.setCodecPreferences([c for c in caps if c.mimeType.lower() in wanted])
        answer = await pc.createAnswer()
        assert rtpmaps(answer.sdp) == {111: "opus", 96: "VP8", 97: "rtx"}
        # (not applied: no ICE gathering needed to check the numbering)
        pc.addTransceiver("video", direction="sendonly")
        reoffer = (await pc.createOffer()).sdp
        assert rtpmaps(sections(reoffer)[0]).get(96) == "opus"  # aiortc's own numbering collides

        dialect = SdpDialect()
        dialect.learn(CHROME_OFFER)
        fixed = rewrite_server_offer(reoffer, dialect)
        meaning: dict[int, str] = {}
        for section in sections(fixed):
            for pt, name in rtpmaps(section).items():
                assert meaning.setdefault(pt, name) == name, f"payload type {pt} means two codecs"
        assert meaning == {111: "opus", 96: "VP8", 97: "rtx"}
        assert "a=fmtp:97 apt=96" in fixed
        ids = dict((uri, int(i)) for i, uri in re.findall(r"a=extmap:(\d+) (\S+)", fixed))
        assert ids["urn:ietf:params:rtp-hdrext:sdes:mid"] == 4
        assert ids["urn:ietf:params:rtp-hdrext:ssrc-audio-level"] == 1
        assert ids["http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"] == 2
        video_heads = [s.splitlines()[0] for s in sections(fixed) if s.startswith("video")]
        assert all(head.endswith("96 97") for head in video_heads)
    finally:
        await pc.close()


def test_ice_ufrag() -> None:
    """The ICE username fragment identifies the client's peer connection."""
    assert ice_ufrag(CHROME_OFFER) == "abcd"
    assert ice_ufrag("v=0") is None and ice_ufrag(None) is None  # type: ignore[arg-type]
