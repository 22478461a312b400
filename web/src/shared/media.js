// The call UI shared by the console, the widget and the join page (call, video, desktop, show screen,
// conference through the server's SFU): local media shown, remote tiles, mute, camera, the recording
// badge, the duration, reconnecting after a drop. The peer connection is shared/rtc.js's ServerPeer;
// what each side publishes and the local media are in shared/callplan.js.
//
//   const call = new Call({hub, request, role, lang, selfName, remoteName, onHangup, extras});
//   mount(call.el);  call.start();     // getUserMedia / getDisplayMedia, then connect
//   call.destroy();                    // tracks stopped, peer closed, UI removed (on request end)
import { h, icon, replace } from "./dom.js";
import { initials } from "./render.js";
import { formatClock, translator } from "./i18n.js";
import { ServerPeer, inboundStats } from "./rtc.js";
import { acquire, addCallTransceivers, plan, stopAll } from "./callplan.js";

/** Attempts to connect again after our peer connection dropped, and the pause before the n-th. */
const RECONNECT_TRIES = 4;
const RECONNECT_DELAY_MS = 1000;

// -- strings of the call UI: the pages' catalogue (../shared/locales), keys `call.<key>` -----------------

/** The call UI's translator for `lang` ("fr", "en", ...): `s(key, params)` is `t("call." + key, params)`. */
export function callStrings(lang) {
  const t = translator(lang);
  return (key, params = {}) => t("call." + key, params);
}

// Icons the shared set lacks (24x24 strokes, like dom.js).
const CALL_ICONS = {
  mic: ["M9 5a3 3 0 0 1 6 0v6a3 3 0 0 1-6 0z", "M5.5 11a6.5 6.5 0 0 0 13 0", "M12 17.5V21"],
  micOff: ["M9 5a3 3 0 0 1 6 0v6a3 3 0 0 1-6 0z", "M5.5 11a6.5 6.5 0 0 0 13 0", "M12 17.5V21", "M4 4l16 16"],
  cameraOff: ["M2.5 7h13v10h-13z", "M15.5 10.5l6-3.5v10l-6-3.5", "M3 3l18 18"],
  hangup: ["M3 14.5c5-5 13-5 18 0l-2.5 2.5-3.5-1.5v-2.5a9 9 0 0 0-6 0v2.5L5.5 17z"],
  expand: ["M4 9V4h5", "M20 9V4h-5", "M4 15v5h5", "M20 15v5h-5"],
  link: ["M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1", "M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1"],
};

/** An icon from the shared set or from the call icons. */
export function callIcon(name, size = 20) {
  const el = icon(CALL_ICONS[name] ? "plus" : name, size);
  if (CALL_ICONS[name]) {
    el.replaceChildren();
    for (const d of CALL_ICONS[name]) {
      const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      path.setAttribute("d", d);
      el.append(path);
    }
  }
  return el;
}

// -- the call ------------------------------------------------------------------------------------------

/**
 * One call in a page: local media, the peer to the server, remote tiles, controls.
 *
 * options: `hub`, `request` ({id, kind}), `role` ("agent" | "customer" | "guest"), `lang`, `selfName`,
 * `remoteName` (the other side of a 1:1 call), `extra` (an agent joining someone else's 1:1 call: all it
 * receives comes on senders the server adds and names, and Hang up only leaves), `onHangup(call)` (what
 * Hang up does; default: `rtc.leave` in a conference or for an extra agent, else `request.end`),
 * `selfId` (our participant id: events about ourselves are not shown), `onEnded(call, reason)`, `onPeerGone(call)` (our connection dropped and could not be made again),
 * `onShareRefused(call)`, `extras(call, btn)` (more buttons).
 *
 * Reconnecting: when this page's connection fails or closes while the call goes on, it connects again
 * (a new peer connection and `rtc.offer`, with the same local media) a few times; the server keeps our
 * place for its rejoin grace. When the other side drops, `rtc.participant` `reconnecting` shows
 * "Reconnecting…" until they are back (`rejoined`).
 */
export class Call {
  constructor(options) {
    Object.assign(this, { lang: "en", selfName: "", remoteName: "" }, options);
    this.id = this.request.id;
    this.kind = this.request.kind;
    this.plan = plan(this.kind, this.role);
    if (this.extra) {
      // watching a colleague's screen share, not sharing one's own
      const base = this.kind === "show_screen" ? plan("desktop", "agent") : this.plan;
      this.plan = { ...base, viaServer: true };
    }
    this.leaves = this.plan.conference || !!this.extra; // Hang up leaves; the others go on
    this.s = callStrings(this.lang);
    this.stream = null;
    this.peer = null;
    this.tiles = new Map(); // key -> {el, video, stream, name}
    this.names = {}; // stream id -> {kind, id, name}
    this.muted = false;
    this.cameraOff = false;
    this.state = "idle";
    this.times = { created: performance.now() };
    this.record = !!this.request.record;
    this.retries = 0;
    this.build();
  }

  // -- life cycle --------------------------------------------------------------------------------------
  /**
   * Acquire media (or use `media`, an `acquire()` promise started earlier, inside the user's click) and
   * connect. A screen publisher without `media` must call this first thing in a click handler.
   */
  async start({ media: prepared = null } = {}) {
    if (this.state !== "idle" && this.state !== "ready") return;
    this.setState("acquiring");
    let media;
    try {
      media = await (prepared || acquire(this.plan));
    } catch (err) {
      // the screen picker was cancelled or refused
      this.setState("ready");
      this.notice(this.s("share_refused"));
      if (this.onShareRefused) this.onShareRefused(this, err);
      return;
    }
    if (this.state === "ended") return stopAll(media.stream);
    this.times.media = performance.now();
    this.stream = media.stream;
    if (media.notice) this.notice(this.s(media.notice));
    for (const track of this.stream ? this.stream.getTracks() : []) {
      track.addEventListener("ended", () => this.onLocalEnded(track));
    }
    this.renderSelf();
    this.setState("connecting");
    await this.connectPeer();
  }

  /** A new peer connection to the server with our local media (the first one, or after a drop). */
  async connectPeer() {
    const stream = this.stream;
    const mine = (fn) => (...args) => this.peer === peer && fn(...args);
    const peer = (this.peer = new ServerPeer(this.hub, this.id, {
      setup: (pc) => {
        pc.addEventListener("track", mine((e) => this.onTrack(e)));
        addCallTransceivers(pc, stream, this.plan);
      },
      onState: mine((state) => this.onPeerState(state)),
      onTransportEnd: mine(() => this.onPeerState("closed")),
      onServerOffer: mine((payload) => payload.streams && this.onStreams(payload.streams)),
      onServerAnswered: mine((payload) => payload.streams && this.onStreams(payload.streams, true)),
      onParticipant: mine((payload) => this.onParticipant(payload)),
    }));
    try {
      await peer.connect();
      this.times.answered = performance.now();
    } catch (err) {
      if (this.state === "ended" || this.peer !== peer) return;
      console.warn("call connect failed", err);
      if (this.retries > 0 && this.retries < RECONNECT_TRIES && !(err && err.code === "conflict")) {
        this.scheduleReconnect();
        return;
      }
      this.notice(this.s("failed") + " " + (err.message || ""));
      this.setState("failed");
      if (this.retries > 0 && this.onPeerGone) this.onPeerGone(this, "failed");
    }
  }

  /** Our connection dropped while the call goes on: connect again after a short pause. */
  scheduleReconnect() {
    if (this.state === "ended" || this.hangingUp || this.reconnectTimer) return;
    this.retries += 1;
    this.setState("reconnecting");
    this.notice(this.s("reconnecting"));
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.state === "ended" || this.hangingUp) return;
      if (this.peer) this.peer.close();
      for (const tile of this.tiles.values()) {
        tile.video.srcObject = null;
        tile.el.remove();
      }
      this.tiles.clear();
      this.renderHead();
      this.connectPeer();
    }, RECONNECT_DELAY_MS * this.retries);
  }

  /** `rtc.participant` of this call: "Reconnecting…" while someone else is away. */
  onParticipant({ type, participant }) {
    if (!participant || (this.selfId && participant.id === this.selfId)) return; // not about ourselves
    this.away = this.away || new Map();
    const key = participant.kind + ":" + participant.id;
    if (type === "reconnecting") this.away.set(key, participant.name || "");
    else if (type === "rejoined" || type === "participant_left" || type === "connected") this.away.delete(key);
    else return;
    this.el.classList.toggle("call--peer-away", this.away.size > 0);
    const names = [...this.away.values()].filter(Boolean);
    this.awayEl.textContent = this.away.size ? this.s("peer_reconnecting", { name: names.join(", ") || this.remoteName || "" }) : "";
    this.awayEl.hidden = !this.away.size;
  }

  /** A screen publisher waits for a click (`Share my screen`) instead of starting at once. */
  ready() {
    this.setState("ready");
  }

  /** Hang up (the UI's button): ends a 1:1 request, leaves a conference. */
  async hangup() {
    if (this.state === "ended" || this.hangingUp) return;
    this.hangingUp = true; // the server closing our peer now is our own doing
    const fn = this.onHangup || ((call) => call.hub.call(call.leaves ? "rtc.leave" : "request.end",
      { request_id: call.id, reason: "hangup" }));
    try {
      await fn(this);
    } catch (err) {
      console.warn("hang up failed", err);
    }
    this.destroy("hangup");
  }

  /** The page goes away (reload, navigation): stop here without ending the call; the server keeps our
   * place for its rejoin grace and the reloaded page joins again. */
  suspend() {
    this.hangingUp = true;
    this.destroy("page_closed");
  }

  /** Stop everything (idempotent): tracks, peer, timers, the UI. */
  destroy(reason = "ended") {
    if (this.state === "ended") return;
    this.setState("ended");
    clearInterval(this.timer);
    clearTimeout(this.reconnectTimer);
    stopAll(this.stream);
    if (this.peer) this.peer.close();
    for (const tile of this.tiles.values()) tile.video.srcObject = null;
    if (this.selfVideo) this.selfVideo.srcObject = null;
    this.el.remove();
    if (this.onEnded) this.onEnded(this, reason);
  }

  onLocalEnded(track) {
    // The browser's "Stop sharing" (or an unplugged device) ends a screen share: hang up.
    if (this.state !== "ended" && this.plan.send.screen && track.kind === "video") this.hangup();
  }

  onPeerState(state) {
    if (state === "connected" && this.state === "reconnecting") {
      this.retries = 0;
      this.notice("");
      this.setState("live");
    } else if (state === "connected" && !this.times.connected) {
      this.times.connected = performance.now();
      this.startedAt = Date.now();
      this.timer = setInterval(() => this.tick(), 1000);
      this.tick();
      this.setState("live");
    } else if (state === "failed" || state === "closed") {
      if (this.state !== "ended" && !this.hangingUp && this.times.connected) {
        // dropped while the call goes on (the request's end destroys the call first): connect again
        if (this.retries < RECONNECT_TRIES) {
          this.scheduleReconnect();
          return;
        }
      }
      if (this.state !== "ended" && !this.hangingUp) {
        this.notice(this.s(state === "failed" ? "failed" : "ended"));
        this.setState("failed");
        if (this.onPeerGone) this.onPeerGone(this, state);
      }
    }
  }

  /** Inbound figures for tests and diagnostics, plus the connection timings (ms since creation). */
  async stats() {
    const inbound = await inboundStats(this.peer && this.peer.pc);
    const t0 = this.times.created;
    const rel = (k) => (this.times[k] ? Math.round(this.times[k] - t0) : null);
    return { ...inbound, state: this.state, times: { media: rel("media"), answered: rel("answered"),
      connected: rel("connected"), firstFrame: rel("firstFrame") } };
  }

  // -- remote media ----------------------------------------------------------------------------------
  onTrack(e) {
    // A conference names each publisher by its stream id (the server's offers map ids to people); a 1:1
    // call has one other side on our own transceivers, plus anyone the server adds (a second agent).
    const id = e.streams[0] && e.streams[0].id;
    const key = id && (this.plan.conference || this.plan.viaServer || this.names[id]) ? id : "remote";
    const tile = this.tile(key);
    if (!tile.stream.getTracks().includes(e.track)) tile.stream.addTrack(e.track);
    const refresh = () => this.renderTile(tile);
    e.track.addEventListener("mute", refresh);
    e.track.addEventListener("unmute", refresh);
    e.track.addEventListener("ended", refresh);
    if (e.streams[0]) e.streams[0].addEventListener("removetrack", refresh);
    this.renderTile(tile);
  }

  onStreams(streams, applied) {
    Object.assign(this.names, streams);
    for (const [key, tile] of this.tiles) {
      if (key === "remote") continue;
      if (applied && !(key in streams)) {
        // the publisher left: the server retired their senders
        tile.video.srcObject = null;
        tile.el.remove();
        this.tiles.delete(key);
      } else if (streams[key]) {
        tile.name = streams[key].name || tile.name;
        this.renderTile(tile);
      }
    }
    this.renderHead();
    this.renderWaiting();
  }

  tile(key) {
    let tile = this.tiles.get(key);
    if (tile) return tile;
    const stream = new MediaStream();
    const video = h("video", { autoplay: true, playsinline: true, class: "tile__video" });
    video.srcObject = stream;
    const avatar = h("span", { class: "tile__avatar" });
    const label = h("figcaption", { class: "tile__name" });
    const el = h("figure", { class: "tile", data: { key } }, video, avatar, label);
    video.addEventListener("dblclick", () => this.toggleLarge());
    video.addEventListener("loadeddata", () => {
      if (!this.times.firstFrame && stream.getVideoTracks().length) this.times.firstFrame = performance.now();
    });
    const who = this.names[key];
    tile = { key, el, video, stream, avatar, label, name: (who && who.name) || (key === "remote" ? this.remoteName : "") };
    this.tiles.set(key, tile);
    this.tilesEl.insertBefore(el, this.plan.conference ? this.selfEl : null);
    video.play().catch(() => {});
    this.renderHead();
    this.renderWaiting();
    return tile;
  }

  renderTile(tile) {
    const hasVideo = tile.stream.getVideoTracks().some((t) => t.readyState === "live");
    tile.el.classList.toggle("tile--novideo", !hasVideo);
    tile.el.classList.toggle("tile--screen", this.kind === "desktop" || this.kind === "show_screen");
    tile.avatar.textContent = initials(tile.name || "?");
    tile.label.textContent = tile.name || "";
    if (tile.video.paused) tile.video.play().catch(() => {});
  }

  // -- controls --------------------------------------------------------------------------------------
  toggleMute() {
    this.muted = !this.muted;
    for (const t of this.stream ? this.stream.getAudioTracks() : []) t.enabled = !this.muted;
    this.renderControls();
  }

  toggleCamera() {
    this.cameraOff = !this.cameraOff;
    for (const t of this.stream ? this.stream.getVideoTracks() : []) t.enabled = !this.cameraOff;
    this.selfEl.classList.toggle("is-off", this.cameraOff);
    this.renderControls();
  }

  toggleLarge() {
    const large = this.el.classList.toggle("call--large");
    const label = large ? this.s("shrink") : this.s("expand");
    this.expandBtn.title = label;
    this.expandBtn.setAttribute("aria-label", label);
    this.expandBtn.setAttribute("aria-pressed", String(large));
  }

  // -- UI ----------------------------------------------------------------------------------------------
  build() {
    this.titleEl = h("span", { class: "call__title" });
    this.peopleEl = h("span", { class: "call__people" });
    this.timerEl = h("span", { class: "call__timer", role: "timer", "aria-label": this.s("duration_label"), text: "" });
    this.tilesEl = h("div", { class: "call__tiles" });
    this.selfVideo = h("video", { autoplay: true, playsinline: true, muted: true, class: "tile__video" });
    this.selfVideo.muted = true;
    this.selfEl = h("figure", { class: "call__self", hidden: true }, this.selfVideo,
      h("figcaption", { class: "tile__name", text: this.s("you") }));
    this.noticeEl = h("div", { class: "call__notice", role: "status", hidden: true });
    this.awayEl = h("div", { class: "call__notice call__away", role: "status", hidden: true });
    this.recEl = h("span", { class: "call__rec", title: this.s("recorded"), "aria-label": this.s("recorded"),
      text: "REC", hidden: !this.record });
    this.waitingEl = h("div", { class: "call__waiting" });
    this.controlsEl = h("div", { class: "call__controls", role: "group", "aria-label": this.s(this.kind) });
    this.expandBtn = h("button", { class: "callbtn callbtn--icon", type: "button", title: this.s("expand"), "aria-label": this.s("expand"),
      "aria-pressed": "false", data: { action: "expand" }, on: { click: () => this.toggleLarge() } }, callIcon("expand", 16));
    this.el = h("section", { class: ["call", "call--" + this.kind, "call--" + this.role], data: { request: this.id, kind: this.kind, state: this.state },
      "aria-label": this.s(this.kind) },
      h("header", { class: "call__head" },
        h("span", { class: "call__dot" }),
        h("div", { class: "call__heading" }, this.titleEl, this.peopleEl),
        this.recEl, this.timerEl, this.expandBtn),
      h("div", { class: "call__stage" }, this.tilesEl, this.waitingEl, this.plan.conference ? null : this.selfEl),
      this.awayEl,
      this.noticeEl,
      this.controlsEl);
    if (this.plan.conference) {
      this.selfEl.classList.add("tile");
      this.tilesEl.append(this.selfEl); // a conference shows everyone side by side, you included
    }
    this.renderHead();
    this.renderWaiting();
    this.renderControls();
  }

  setState(state) {
    this.state = state;
    if (this.el) this.el.dataset.state = state;
    this.renderWaiting();
    this.renderControls();
  }

  tick() {
    if (this.startedAt) this.timerEl.textContent = formatClock((Date.now() - this.startedAt) / 1000, this.lang);
  }

  notice(text) {
    this.noticeEl.textContent = text;
    this.noticeEl.hidden = !text;
  }

  renderHead() {
    this.titleEl.textContent = this.s(this.kind);
    const names = [...this.tiles.values()].map((t) => t.name).filter(Boolean);
    if (!names.length && this.remoteName && !this.plan.conference) names.push(this.remoteName);
    this.peopleEl.textContent = [this.s("you"), ...names].join(", ");
  }

  renderSelf() {
    const video = this.stream && this.stream.getVideoTracks().length ? this.stream : null;
    this.selfEl.hidden = !video;
    this.selfEl.classList.toggle("call__self--screen", !!this.plan.send.screen);
    if (video) {
      this.selfVideo.srcObject = video;
      this.selfVideo.play().catch(() => {});
    }
  }

  renderWaiting() {
    if (!this.waitingEl || !this.el) return;
    let text = "";
    if (this.state === "acquiring" || this.state === "connecting") text = this.s("connecting");
    else if (this.state === "reconnecting") text = this.s("reconnecting");
    else if (this.state === "ready") text = "";
    else if (this.plan.send.screen) text = this.tiles.size ? "" : this.s("sharing");
    else if (!this.tiles.size) text = this.plan.conference ? this.s("waiting_people") : this.plan.recv.includes("video") && !this.plan.send.video ? this.s("waiting_screen") : "";
    this.waitingEl.textContent = text;
    this.waitingEl.hidden = !text;
    this.el.classList.toggle("call--waiting", !this.tiles.size);
  }

  renderControls() {
    if (!this.controlsEl) return;
    const s = this.s;
    const hasAudio = this.plan.send.audio && this.stream && this.stream.getAudioTracks().length;
    const hasCamera = this.plan.send.video && this.stream && this.stream.getVideoTracks().length;
    const btn = (action, iconName, label, onClick, cls = "", pressed) => h("button", {
      class: ["callbtn", cls], type: "button", title: label, "aria-label": label, data: { action },
      "aria-pressed": pressed === undefined ? undefined : String(pressed), on: { click: onClick } }, callIcon(iconName, 20),
    h("span", { class: "callbtn__label", text: label }));
    const buttons = [];
    if (this.state === "ready") {
      buttons.push(btn("share", "screen", s("share"), () => this.start(), "callbtn--primary"));
    }
    if (this.plan.send.audio) {
      const b = btn("mute", this.muted ? "micOff" : "mic", this.muted ? s("unmute") : s("mute"), () => this.toggleMute(),
        this.muted ? "is-on" : "", this.muted);
      b.disabled = !hasAudio;
      buttons.push(b);
    }
    if (this.plan.send.video) {
      const b = btn("camera", this.cameraOff ? "cameraOff" : "camera", this.cameraOff ? s("camera_on") : s("camera_off"),
        () => this.toggleCamera(), this.cameraOff ? "is-on" : "", this.cameraOff);
      b.disabled = !hasCamera;
      buttons.push(b);
    }
    if (this.extras) buttons.push(...[].concat(this.extras(this, btn) || []));
    buttons.push(btn("hangup", "hangup", this.leaves ? s("leave") : s("hangup"), () => this.hangup(), "callbtn--danger"));
    replace(this.controlsEl, buttons);
  }
}
