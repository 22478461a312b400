// Co-browsing, agent side: the Co-Browsing view replays each live session with the rrweb replayer.
//
// One `AgentCobrowse` per session this tab watches: a peer connection to the server with a
// `cobrowse` data channel (shared/rtc.js), the customer's rrweb events in (chunked above 262,144
// bytes: shared/chunks.js), replayed live (`new Replayer([], {root, liveMode: true})`,
// `startLive(firstEvent.timestamp)`, `addEvent` for each) in an iframe sandboxed `allow-same-origin`
// without `allow-scripts` (never `UNSAFE_replayCanvas`): nothing recorded can run here. The agent's
// mouse over the replay goes to the customer as `{t: "pointer", x, y}` (page coordinates,
// throttled), a click as `{t: "highlight", id, x, y, w, h}` (rrweb node id and page rectangle).
//
// The agent who asked joins as soon as the customer accepts (the request becomes `active` when the
// first full snapshot reaches an agent); other agents join by opening the session (the view's list,
// or "Watch live" on the conversation's request chip) and get a fresh full snapshot: the server asks
// the customer for one, and the console asks again if none came. One tab per agent watches a session
// (Web Locks): the server knows one peer per participant. The session lives as long as the request:
// leaving the view keeps it; "End co-browsing" calls `request.end`.
import { Replayer } from "@rrweb/replay";
import { h, icon, replace } from "../shared/dom.js";
import { isLive } from "../shared/timeline.js";
import { ServerPeer } from "../shared/rtc.js";
import { JsonSender, jsonReceiver } from "../shared/chunks.js";
import { requestHandlers } from "./conversation.js";
import { toast } from "./ui.js";

const POINTER_INTERVAL_MS = 50;
const SNAPSHOT_WAIT_MS = 1500;
const LIVE_CLOCK_SPEED = 4;
const CONNECT_RETRIES = 3;
const EVENT_META = 4;
const EVENT_FULL_SNAPSHOT = 2;

/** A session's state in the console's language (`cb.state.<state>` in ../shared/locales). */
const stateLabel = (app, state) => (app.t.has("cb.state." + state) ? app.t("cb.state." + state) : state);

/** Everything co-browsing in the console (`app.cobrowse`): the view and the sessions. */
export class CobrowseConsole {
  constructor(app) {
    this.app = app;
    this.sessions = new Map(); // request id -> AgentCobrowse
    this.selected = null;
    this.list = h("ul", { class: "cbv__list" });
    this.main = h("div", { class: "cbv__main" });
    this.empty = h("div", { class: "cbv__empty" },
      icon("cobrowse", 44),
      h("h2", { text: app.t("cb.empty_title") }),
      h("p", { text: app.t("cb.empty_text") }));
    replace(app.cobrowseView, h("div", { class: "cbv" },
      h("aside", { class: "cbv__side" }, h("h1", { text: app.t("cb.title") }), this.list),
      this.main));
  }

  cobrowseRequests() {
    return [...this.app.requests.values()].filter((r) => r.kind === "cobrowse");
  }

  /** Follow the requests: join the ones this agent asked for, drop the ended ones; draw the view. */
  render() {
    for (const request of this.cobrowseRequests()) {
      const session = this.sessions.get(request.id);
      if (session) session.update(request);
      else if (connectable(request) && request.requested_by === this.app.me.id && !this.left(request.id)) this.join(request);
    }
    this.renderList();
    this.renderMain();
  }

  left(id) {
    return (this.leftIds || (this.leftIds = new Set())).has(id);
  }

  join(request) {
    let session = this.sessions.get(request.id);
    if (!session) {
      session = new AgentCobrowse(this, request);
      this.sessions.set(request.id, session);
      if (!this.selected || !this.sessions.has(this.selected)) this.selected = request.id;
      this.renderMain(); // the replay's root must be in the document before the first event
      session.start();
    }
    return session;
  }

  /** Open a session in the view (joining it first). */
  open(requestId) {
    const request = this.app.requests.get(requestId);
    if (!request || !connectable(request)) return;
    const current = this.sessions.get(requestId);
    if (current && current.state === "failed") current.reconnect();
    this.join(request);
    this.selected = requestId;
    this.app.setView("cobrowse");
    this.renderList();
    this.renderMain();
    this.sessions.get(requestId).fit();
  }

  /** A session ended (its request, or its connection). */
  ended(session) {
    if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
    this.leftIds = this.leftIds || new Set();
    this.leftIds.add(session.id);
    if (this.selected === session.id) this.selected = this.sessions.keys().next().value || null;
    this.renderList();
    this.renderMain();
  }

  renderList() {
    const live = this.cobrowseRequests().filter(isLive).sort((a, b) => (a.created_at < b.created_at ? -1 : 1));
    replace(this.list, live.map((r) => {
      const conv = this.app.convs.get(r.conversation_id) || { id: r.conversation_id };
      const session = this.sessions.get(r.id);
      const sub = session ? stateLabel(this.app, session.state) : r.state === "pending" ? this.app.t("cb.waiting_customer") : this.app.t("cb.not_watching");
      return h("li", {},
        h("button", { class: ["cbv__item", this.selected === r.id && session && "is-selected"], type: "button",
          data: { id: r.id, state: r.state }, on: { click: () => this.open(r.id) }, disabled: !connectable(r) },
        r.state === "active" ? h("span", { class: "cbv__live", title: this.app.t("cb.live") }) : h("span", { class: "green-dot", title: this.app.t("state." + r.state) }),
        h("span", { class: "cbv__item-main" },
          h("span", { class: "cbv__item-name", text: this.app.visitorName(conv) }),
          h("span", { class: "cbv__item-sub", text: sub }))));
    }));
  }

  renderMain() {
    const shown = this.sessions.get(this.selected);
    for (const session of this.sessions.values()) {
      if (session.el.parentNode !== this.main) this.main.append(session.el); // appended once: moving an iframe reloads it
      session.el.hidden = session !== shown;
    }
    for (const el of [...this.main.children]) {
      if (el !== this.empty && ![...this.sessions.values()].some((s) => s.el === el)) el.remove();
    }
    if (!shown && this.empty.parentNode !== this.main) this.main.prepend(this.empty);
    this.empty.hidden = !!shown;
    if (shown) shown.fit();
  }

  /** The conversation's request chip: a "Watch live" button while the session is live. */
  decorateChip(request) {
    const pane = this.app.pane;
    if (!pane || !connectable(request)) return;
    const chip = pane.requestsEl.querySelector(`.reqchip[data-id="${CSS.escape(request.id)}"]`);
    if (!chip || chip.querySelector(".reqchip__watch")) return;
    const watch = h("button", { class: "btn btn--small btn--primary reqchip__watch", type: "button",
      on: { click: () => this.open(request.id) } }, icon("cobrowse", 14), this.app.t("cb.watch"));
    const end = chip.querySelector("button");
    chip.insertBefore(watch, end);
  }

  /** Close every session (logout). */
  close() {
    for (const session of [...this.sessions.values()]) session.stop("closed");
  }
}

function connectable(request) {
  return request.state === "accepted" || request.state === "active";
}

/** One co-browse session watched in this tab. */
class AgentCobrowse {
  constructor(owner, request) {
    this.owner = owner;
    this.app = owner.app;
    this.request = request;
    this.state = "connecting";
    this.stopped = false;
    this.replayer = null;
    this.scale = 1;
    this.dims = null;
    this.lastPointer = null;
    this.pointerTimer = null;
    this.snapshotAt = 0;
    this.events = 0;
    this.build();
  }

  get id() {
    return this.request.id;
  }

  // -- DOM ---------------------------------------------------------------------------------------------
  build() {
    const conv = this.app.convs.get(this.request.conversation_id) || { id: this.request.conversation_id };
    this.stateEl = h("span", { class: "cbs__state" });
    this.metaEl = h("span", { class: "cbs__meta" });
    this.root = h("div", { class: "cbs__root" });
    this.overlay = h("div", { class: "cbs__overlay", title: this.app.t("cb.pointer_title"),
      on: {
        mousemove: (e) => this.onMouse(e),
        mouseleave: () => this.pointerGone(),
        click: (e) => this.onClick(e),
      } });
    this.waiting = h("div", { class: "cbs__waiting" }, h("span", { class: "spinner" }), h("span", { text: this.app.t("cb.waiting_page") }));
    this.box = h("div", { class: "cbs__box", hidden: true }, this.root, this.overlay);
    this.viewport = h("div", { class: "cbs__viewport" }, this.waiting, this.box);
    this.el = h("section", { class: "cbs", data: { id: this.id } },
      h("div", { class: "cbs__bar" },
        h("span", { class: "cbs__title", text: this.app.visitorName(conv) }),
        this.stateEl, this.metaEl,
        h("span", { class: "cbs__spacer" }),
        this.reconnectBtn = h("button", { class: "btn btn--primary btn--small", type: "button", hidden: true,
          on: { click: () => this.reconnect() } }, this.app.t("cb.reconnect")),
        h("button", { class: "btn btn--ghost btn--small", type: "button", title: this.app.t("cb.refresh_title"),
          on: { click: () => this.requestSnapshot() } }, this.app.t("cb.refresh")),
        h("button", { class: "btn btn--ghost btn--small", type: "button",
          on: { click: () => this.app.openConversation(this.request.conversation_id) } }, this.app.t("cb.conversation")),
        h("button", { class: "btn btn--danger btn--small cbs__end", type: "button", on: { click: () => this.end() } }, this.app.t("cb.end"))),
      h("div", { class: "cbs__hint", text: this.app.t("cb.hint") }),
      this.viewport);
    this.resizeObserver = new ResizeObserver(() => this.fit());
    this.resizeObserver.observe(this.viewport);
    this.setState("connecting");
  }

  setState(state) {
    this.state = state;
    this.stateEl.textContent = stateLabel(this.app, state);
    this.stateEl.className = "cbs__state cbs__state--" + state;
    this.el.dataset.state = state;
    if (this.reconnectBtn) this.reconnectBtn.hidden = state !== "failed";
    this.owner.renderList();
  }

  /** Scale the replay to the free space (never up). */
  fit() {
    if (!this.dims || this.el.hidden) return;
    const { width, height } = this.dims;
    const free = this.viewport.getBoundingClientRect();
    if (!free.width || !free.height) return;
    const scale = Math.min(1, (free.width - 32) / width, (free.height - 32) / height);
    this.scale = scale > 0 ? scale : 1;
    this.root.style.transform = `scale(${this.scale})`;
    this.box.style.width = Math.round(width * this.scale) + "px";
    this.box.style.height = Math.round(height * this.scale) + "px";
    this.metaEl.textContent = `${width}×${height}` + (this.scale < 1 ? ` · ${Math.round(this.scale * 100)}%` : "");
  }

  // -- connection ---------------------------------------------------------------------------------------
  start() {
    const lockName = "rtc-engage.cobrowse." + this.id;
    if (navigator.locks && navigator.locks.request) {
      navigator.locks.request(lockName, { ifAvailable: true }, (lock) => {
        if (!lock) {
          this.setState("elsewhere");
          return undefined;
        }
        this.connect();
        return new Promise((resolve) => (this.releaseLock = resolve));
      }).catch((err) => {
        console.warn("lock failed", err);
        this.connect();
      });
    } else {
      this.connect();
    }
  }

  connect(attempt = 0) {
    if (this.stopped) return;
    this.setState("connecting");
    this.peer = new ServerPeer(this.app.hub, this.id, {
      setup: (pc) => {
        const channel = (this.channel = pc.createDataChannel("cobrowse"));
        this.sender = new JsonSender(channel, { prefix: "a" });
        channel.addEventListener("open", () => {
          if (this.state === "connecting") this.setState(this.snapshotAt ? "live" : "waiting");
          clearTimeout(this.snapshotTimer);
          this.snapshotTimer = setTimeout(() => !this.snapshotAt && this.requestSnapshot(), SNAPSHOT_WAIT_MS);
        });
        channel.addEventListener("close", () => this.disconnected(channel));
        channel.addEventListener("message", jsonReceiver((m) => this.onEvent(m)));
      },
      onState: (state) => {
        if (state === "failed" || state === "closed") this.disconnected(this.channel);
      },
    });
    const peer = this.peer;
    peer.connect().catch((err) => {
      if (this.stopped || peer !== this.peer) return;
      peer.close();
      // The console can hear of the acceptance before the server's media session is open.
      if (err && err.code === "not_found" && attempt < CONNECT_RETRIES && connectable(this.request)) {
        this.retryTimer = setTimeout(() => this.connect(attempt + 1), 300 * 2 ** attempt);
        return;
      }
      console.warn("co-browse connection failed", err);
      toast(this.app, this.app.t("cb.error", { message: err.message || this.app.t("cb.connect_failed") }), "error");
      this.disconnected(this.channel);
    });
  }

  /** The connection is gone while the request may still be live (the list and "Reconnect" offer to join again). */
  disconnected(channel) {
    if (this.stopped || this.state === "failed" || channel !== this.channel) return;
    this.setState("failed");
    if (this.peer) this.peer.close();
    this.lastPointer = null;
  }

  reconnect() {
    if (this.stopped || this.state !== "failed" || !connectable(this.request)) return;
    this.connect();
  }

  /** Ask the customer's page for a fresh full snapshot. */
  requestSnapshot() {
    if (this.sender) this.sender.send({ t: "snapshot_request" });
  }

  end() {
    this.app.hub.call("request.end", { request_id: this.id }).then(
      (res) => this.app.onRequest(res.request),
      (err) => toast(this.app, err.message, "error"));
  }

  update(request) {
    this.request = request;
    if (!connectable(request)) this.stop("request " + request.state);
  }

  /** Close the connection and the replay (idempotent). */
  stop() {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.snapshotTimer);
    clearTimeout(this.pointerTimer);
    clearTimeout(this.retryTimer);
    if (this.peer) this.peer.close();
    if (this.releaseLock) this.releaseLock();
    this.resizeObserver.disconnect();
    if (this.replayer) {
      try {
        this.replayer.destroy();
      } catch (err) {
        console.warn(err);
      }
    }
    this.replayer = null;
    this.el.remove();
    this.state = "ended";
    this.owner.ended(this);
  }

  // -- replay -----------------------------------------------------------------------------------------
  onEvent(event) {
    if (this.stopped || !event || typeof event.type !== "number" || typeof event.timestamp !== "number") return;
    if (!this.replayer) {
      if (event.type !== EVENT_META && event.type !== EVENT_FULL_SNAPSHOT) return; // cannot start from a change
      this.replayer = this.createReplayer();
      if (!this.replayer) return;
      this.replayer.startLive(event.timestamp);
    }
    this.events += 1;
    if (event.type === EVENT_FULL_SNAPSHOT) {
      this.snapshotAt = Date.now();
      this.box.hidden = false;
      this.waiting.hidden = true;
      if (this.state !== "live") this.setState("live");
    }
    this.replayer.addEvent(event);
  }

  createReplayer() {
    const replayer = new Replayer([], {
      root: this.root,
      liveMode: true,
      // The live clock runs ahead of the customer's events, so each one is applied when it arrives:
      // started at the first event, a clock at speed 1 would keep that event's transit time as a
      // lag on every later one (they are never applied before they arrive: the channel is ordered).
      speed: LIVE_CLOCK_SPEED,
      UNSAFE_replayCanvas: false,
      triggerFocus: false,
      showWarning: false,
      mouseTail: { duration: 500, lineCap: "round", lineWidth: 3, strokeStyle: "rgba(26, 109, 222, 0.45)" },
    });
    // The replay runs no script: rrweb's sandbox is `allow-same-origin` only. Refuse anything else.
    const sandbox = replayer.iframe.getAttribute("sandbox") || "";
    if (!replayer.iframe.hasAttribute("sandbox") || sandbox.split(/\s+/).includes("allow-scripts")) {
      replayer.destroy();
      toast(this.app, this.app.t("cb.unsafe"), "error");
      this.stop();
      return null;
    }
    replayer.iframe.setAttribute("title", this.app.t("cb.frame"));
    replayer.on("resize", (dims) => {
      this.dims = { width: dims.width, height: dims.height };
      this.fit();
    });
    return replayer;
  }

  // -- pointer and highlight ----------------------------------------------------------------------------
  /** Client coordinates over the replay -> the customer's viewport and page coordinates. */
  toPage(clientX, clientY) {
    const rect = this.box.getBoundingClientRect();
    const vx = (clientX - rect.left) / this.scale;
    const vy = (clientY - rect.top) / this.scale;
    const win = this.replayer && this.replayer.iframe.contentWindow;
    const sx = win ? win.scrollX : 0;
    const sy = win ? win.scrollY : 0;
    return { vx, vy, sx, sy, x: Math.round(vx + sx), y: Math.round(vy + sy) };
  }

  onMouse(e) {
    this.lastPointer = [e.clientX, e.clientY];
    if (this.pointerTimer) return;
    this.sendPointer();
    this.pointerTimer = setTimeout(() => {
      this.pointerTimer = null;
      if (this.lastPointer) this.sendPointer();
    }, POINTER_INTERVAL_MS);
  }

  sendPointer() {
    if (!this.sender || !this.lastPointer) return;
    const { x, y } = this.toPage(...this.lastPointer);
    this.sender.send({ t: "pointer", x, y });
    this.lastPointer = null;
  }

  pointerGone() {
    this.lastPointer = null;
    if (this.sender) this.sender.send({ t: "pointer", hidden: true });
  }

  onClick(e) {
    if (!this.replayer || !this.sender) return;
    const p = this.toPage(e.clientX, e.clientY);
    const doc = this.replayer.iframe.contentDocument;
    const target = doc && doc.elementFromPoint(p.vx, p.vy);
    const message = { t: "highlight", x: p.x - 20, y: p.y - 20, w: 40, h: 40 };
    let local = { left: p.vx - 20, top: p.vy - 20, width: 40, height: 40 };
    if (target && target !== doc.documentElement && target !== doc.body) {
      const r = target.getBoundingClientRect();
      const id = this.replayer.getMirror().getId(target);
      Object.assign(message, { x: Math.round(r.left + p.sx), y: Math.round(r.top + p.sy), w: Math.round(r.width), h: Math.round(r.height) });
      if (id > 0) message.id = id;
      local = { left: r.left, top: r.top, width: r.width, height: r.height };
    }
    this.sender.send(message);
    this.flash(local);
  }

  /** The highlight as the agent sees it, briefly. */
  flash({ left, top, width, height }) {
    const s = this.scale;
    const el = h("div", { class: "cbs__flash", style: {
      left: left * s - 3 + "px", top: top * s - 3 + "px", width: width * s + 6 + "px", height: height * s + 6 + "px" } });
    this.box.append(el);
    setTimeout(() => el.classList.add("is-fading"), 900);
    setTimeout(() => el.remove(), 1600);
  }
}

requestHandlers.cobrowse = (app, request) => {
  if (app.cobrowse) app.cobrowse.decorateChip(request);
};
