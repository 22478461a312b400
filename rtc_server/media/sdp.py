"""SDP text rewrites around the server's aiortc peers.

Offers from clients:

- :func:`strip_mdns_candidates` drops ``a=candidate`` lines on ``<uuid>.local`` addresses: aiortc
  spends about a second trying to resolve them, and a browser always offers a routable candidate too.
- :func:`restrict_codecs` keeps Opus (audio) and VP8 with its RTX (video) only. The server forwards
  encoded frames without transcoding, so every participant of a session must use the same codecs, and
  the forwarding layer packetises exactly these two.

Offers from the server (renegotiation when another participant's track is added or removed):
aiortc's ``createOffer`` re-announces every m-section with aiortc's own payload types (Opus 96,
VP8 97, RTX 98) and header-extension ids, whatever was negotiated before. A browser keeps its own
numbering (Chromium: Opus 111, VP8 96, RTX 97) and refuses a bundle whose numbers change meaning
("codec collision", "RTP extension ID reassignment"). :class:`SdpDialect` learns the client's numbering
from its offers and :func:`rewrite_server_offer` renumbers the server's offer to match, so existing
m-sections keep their negotiated numbers and new ones use the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

#: The codecs the server forwards, by media kind (lower-case encoding names).
FORWARDED_CODECS = {"audio": "opus", "video": "vp8"}
#: aiortc's default payload types for them (used when the client has not shown its own).
DEFAULT_PAYLOAD_TYPES = {"opus": 96, "vp8": 97, "rtx": 98}
DYNAMIC_PAYLOAD_TYPES = range(96, 128)
EXTENSION_IDS = range(1, 15)

_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([^/\s]+)/(\d+)")
_FMTP = re.compile(r"^a=fmtp:(\d+) (.*)$")
_APT = re.compile(r"(?:^|;)\s*apt=(\d+)")
_PT_LINE = re.compile(r"^a=(rtpmap|fmtp|rtcp-fb):(\d+|\*)(.*)$")
_EXTMAP = re.compile(r"^a=extmap:(\d+)(/\S+)? (\S+)(.*)$")


class SdpError(ValueError):
    """The SDP cannot be used (malformed, or no codec the server can forward)."""


@dataclass(slots=True)
class _Section:
    lines: list[str]

    @property
    def kind(self) -> str:
        return self.lines[0][2:].split(" ", 1)[0]

    def codecs(self) -> dict[int, tuple[str, int | None]]:
        """Payload type -> (lower-case encoding name, apt for RTX)."""
        names: dict[int, str] = {}
        apts: dict[int, int] = {}
        for line in self.lines:
            if m := _RTPMAP.match(line):
                names[int(m.group(1))] = m.group(2).lower()
            elif m := _FMTP.match(line):
                if a := _APT.search(m.group(2)):
                    apts[int(m.group(1))] = int(a.group(1))
        return {pt: (name, apts.get(pt)) for pt, name in names.items()}


def _split(sdp: str) -> tuple[list[str], list[_Section]]:
    if not isinstance(sdp, str) or not sdp.lstrip().startswith("v="):
        raise SdpError("not an SDP description")
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    session: list[str] = []
    sections: list[_Section] = []
    for line in lines:
        if line.startswith("m="):
            if len(line.split(" ")) < 4:
                raise SdpError(f"malformed media line {line!r}")
            sections.append(_Section([line]))
        elif sections:
            sections[-1].lines.append(line)
        else:
            session.append(line)
    return session, sections


def _join(session: list[str], sections: Iterable[_Section]) -> str:
    lines = list(session)
    for section in sections:
        lines.extend(section.lines)
    return "\r\n".join(lines) + "\r\n"


def strip_mdns_candidates(sdp: str) -> str:
    """``sdp`` without ``a=candidate`` lines whose address is an mDNS ``.local`` name."""
    session, sections = _split(sdp)
    for section in sections:
        section.lines = [
            line
            for line in section.lines
            if not (line.startswith("a=candidate:") and _candidate_address(line).endswith(".local"))
        ]
    return _join(session, sections)


def _candidate_address(line: str) -> str:
    parts = line.split(" ")
    return parts[4].lower() if len(parts) > 4 else ""


def ice_ufrag(sdp: str) -> str | None:
    """The first ``a=ice-ufrag`` of a description (``None`` if it has none or is not SDP)."""
    if not isinstance(sdp, str):
        return None
    match = re.search(r"^a=ice-ufrag:(\S+)", sdp, re.MULTILINE)
    return match.group(1) if match else None


def restrict_codecs(sdp: str) -> str:
    """Keep only the first Opus (audio sections) and the first VP8 and its RTX (video sections).

    Raises :class:`SdpError` when an audio or video section offers neither.
    """
    session, sections = _split(sdp)
    for section in sections:
        wanted = FORWARDED_CODECS.get(section.kind)
        if wanted is None:
            continue
        keep = _forwarded_payload_types(section)
        if keep is None:
            raise SdpError(
                f"the {section.kind} section offers no {wanted.upper()}: the server forwards "
                f"{wanted.upper()} only"
            )
        _keep_payload_types(section, keep)
    return _join(session, sections)


def _forwarded_payload_types(section: _Section) -> set[int] | None:
    """The section's first payload type of the forwarded codec and its RTX, or ``None``."""
    wanted = FORWARDED_CODECS[section.kind]
    codecs = section.codecs()
    base = next((pt for pt in _formats(section) if codecs.get(pt, ("",))[0] == wanted), None)
    if base is None:
        return None
    return {base} | {pt for pt, (name, apt) in codecs.items() if name == "rtx" and apt == base}


def _formats(section: _Section) -> list[int]:
    return [int(f) for f in section.lines[0].split(" ")[3:] if f.isdigit()]


def _keep_payload_types(section: _Section, keep: set[int]) -> None:
    head = section.lines[0].split(" ")
    head = head[:3] + [f for f in head[3:] if f.isdigit() and int(f) in keep]
    out = [" ".join(head)]
    for line in section.lines[1:]:
        m = _PT_LINE.match(line)
        if m and m.group(2) != "*" and int(m.group(2)) not in keep:
            continue
        out.append(line)
    section.lines = out


@dataclass
class SdpDialect:
    """A client's payload-type and header-extension numbering, learned from its offers."""

    payload_types: dict[str, int] = field(default_factory=dict)
    """``opus``, ``vp8``, ``rtx`` (the RTX of that VP8) -> payload type."""
    extension_ids: dict[str, int] = field(default_factory=dict)
    """Header-extension URI -> id."""
    _seen_pts: set[int] = field(default_factory=set)
    _seen_ids: set[int] = field(default_factory=set)

    def learn(self, sdp: str) -> None:
        """Remember the numbering of a client offer or answer (first mapping wins)."""
        _, sections = _split(sdp)
        for section in sections:
            codecs = section.codecs()
            self._seen_pts.update(codecs)
            wanted = FORWARDED_CODECS.get(section.kind)
            for pt in _formats(section):
                name, _apt = codecs.get(pt, ("", None))
                if name == wanted and wanted not in self.payload_types:
                    self.payload_types[wanted] = pt
                    if wanted == "vp8":
                        for rtx, (rname, apt) in codecs.items():
                            if rname == "rtx" and apt == pt:
                                self.payload_types.setdefault("rtx", rtx)
                                break
            for line in section.lines:
                if m := _EXTMAP.match(line):
                    ext_id = int(m.group(1))
                    self._seen_ids.add(ext_id)
                    self.extension_ids.setdefault(m.group(3), ext_id)

    def payload_type(self, codec: str) -> int:
        """The client's payload type for ``codec``, choosing a free one the first time."""
        if codec not in self.payload_types:
            taken = self._seen_pts | set(self.payload_types.values())
            default = DEFAULT_PAYLOAD_TYPES.get(codec, 96)
            pt = default if default not in taken else next(p for p in DYNAMIC_PAYLOAD_TYPES if p not in taken)
            self.payload_types[codec] = pt
        return self.payload_types[codec]

    def extension_id(self, uri: str, proposed: int) -> int:
        """The client's id for header extension ``uri``, choosing a free one the first time."""
        if uri not in self.extension_ids:
            taken = self._seen_ids | set(self.extension_ids.values())
            ext_id = proposed if proposed not in taken else next(i for i in EXTENSION_IDS if i not in taken)
            self.extension_ids[uri] = ext_id
        return self.extension_ids[uri]


def rewrite_server_offer(sdp: str, dialect: SdpDialect) -> str:
    """Renumber the payload types and header-extension ids of an aiortc offer to the client's (and
    keep only the forwarded codecs in it)."""
    session, sections = _split(sdp)
    for section in sections:
        if section.kind not in FORWARDED_CODECS:
            continue
        keep = _forwarded_payload_types(section)
        if keep is None:
            continue
        codecs = section.codecs()
        _keep_payload_types(section, keep)
        pt_map = {pt: dialect.payload_type(codecs[pt][0]) for pt in keep}
        out = []
        head = section.lines[0].split(" ")
        out.append(" ".join(head[:3] + [str(pt_map.get(int(f), f)) if f.isdigit() else f for f in head[3:]]))
        for line in section.lines[1:]:
            if (m := _PT_LINE.match(line)) and m.group(2) != "*":
                attr, pt, rest = m.group(1), int(m.group(2)), m.group(3)
                if attr == "fmtp":
                    rest = _renumber_apt(rest, pt_map)
                line = f"a={attr}:{pt_map.get(pt, pt)}{rest}"
            elif m := _EXTMAP.match(line):
                new = dialect.extension_id(m.group(3), int(m.group(1)))
                line = f"a=extmap:{new}{m.group(2) or ''} {m.group(3)}{m.group(4)}"
            out.append(line)
        section.lines = out
    return _join(session, sections)


def _renumber_apt(params: str, pt_map: dict[int, int]) -> str:
    return re.sub(r"apt=(\d+)", lambda a: f"apt={pt_map.get(int(a.group(1)), a.group(1))}", params)
