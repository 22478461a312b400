// Co-browsing, customer side: once the customer accepts a `cobrowse` request in this tab, the page is
// recorded with rrweb (masked here first: it never leaves the browser unmasked) and each event is
// sent as JSON over a `cobrowse` data channel to the server's peer (`rtc.offer`), which relays it
// to the agents (see rtc_server/media/cobrowse.py). The customer sees a bar "Your screen is being
// shared with <agent> — Stop" and the agents' pointers and highlights; Stop ends the request.
//
// Masking, in the order it applies: rrweb's options (every input value: `maskInputOptions.input`,
// whose tag key covers every input type, hidden and `autocomplete="cc-*"` fields included; text of
// `.rr-mask` elements; `.rr-block` elements not recorded at all, the widget itself included), then
// `scrubEvent` on every event before it is sent: `attributes.value` of input/textarea/select nodes
// (rrweb snapshots the raw attribute of an input whose value was emptied), the text of textareas,
// text-bearing attributes inside `.rr-mask` elements, and input events once more. The server checks
// every event again (rtc_server/media/masking.py).
import { record } from "@rrweb/record";
import { h, replace } from "../shared/dom.js";
import { ServerPeer } from "../shared/rtc.js";
import { JsonSender, jsonReceiver } from "../shared/chunks.js";
import { requestHandlers } from "./handlers.js";
import css from "./cobrowse.css";

export const MASK_TEXT_CLASS = "rr-mask";
export const BLOCK_CLASS = "rr-block";

const mask = (text) => "*".repeat(String(text).length);
const maskText = (text) => String(text).replace(/\S/g, "*");

/** rrweb `record()` options: the tightest masking found (see /shared/docs/FACTS.md). */
export const RECORD_OPTIONS = {
  blockClass: BLOCK_CLASS,
  maskTextClass: MASK_TEXT_CLASS,
  maskInputOptions: { input: true, textarea: true, select: true, password: true },
  maskInputFn: (text) => mask(text),
  maskTextFn: (text) => maskText(text),
  sampling: { mousemove: 16, mousemoveCallback: 50 },
  slimDOMOptions: "all",
  recordCanvas: false,
  collectFonts: false,
  inlineImages: false,
  recordCrossOriginIframes: false,
};

// rrweb 2.x numbers
const EVENT_FULL_SNAPSHOT = 2;
const EVENT_INCREMENTAL = 3;
const SOURCE_MUTATION = 0;
const SOURCE_INPUT = 5;
const NODE_ELEMENT = 2;
const NODE_TEXT = 3;
const VALUE_TAGS = new Set(["input", "textarea", "select"]);
const BUTTON_TYPES = new Set(["button", "submit", "reset", "image"]);
const TEXT_ATTRIBUTES = ["value", "title", "alt", "placeholder", "aria-label", "aria-description", "aria-valuetext"];

function hasClass(attributes, name) {
  return typeof attributes.class === "string" && attributes.class.split(/\s+/).includes(name);
}

function holdsValue(tag, type) {
  return VALUE_TAGS.has(tag) && !(tag === "input" && BUTTON_TYPES.has(String(type || "").toLowerCase()));
}

/** Scrub one serialized node tree in place; `masked`: it sits inside a `.rr-mask` element. */
function scrubTree(root, masked) {
  const stack = [[root, masked, false]];
  while (stack.length) {
    const [node, insideMask, insideTextarea] = stack.pop();
    if (!node || typeof node !== "object") continue;
    let childMask = insideMask;
    let childTextarea = insideTextarea;
    if (node.type === NODE_ELEMENT) {
      const tag = String(node.tagName || "").toLowerCase();
      const attributes = node.attributes && typeof node.attributes === "object" ? node.attributes : (node.attributes = {});
      if ("value" in attributes && holdsValue(tag, attributes.type)) attributes.value = mask(attributes.value || "");
      childMask = insideMask || hasClass(attributes, MASK_TEXT_CLASS);
      if (childMask) {
        for (const name of TEXT_ATTRIBUTES) if (typeof attributes[name] === "string") attributes[name] = maskText(attributes[name]);
      }
      childTextarea = tag === "textarea";
    } else if (node.type === NODE_TEXT && (insideMask || insideTextarea) && !node.isStyle && typeof node.textContent === "string") {
      node.textContent = maskText(node.textContent);
    }
    if (Array.isArray(node.childNodes)) for (const child of node.childNodes) stack.push([child, childMask, childTextarea]);
  }
}

function insideMask(node) {
  const el = node && (node.nodeType === 1 ? node : node.parentElement);
  return !!(el && el.closest && el.closest("." + MASK_TEXT_CLASS));
}

/**
 * Scrub an rrweb event in place before it leaves the page. `mirror` is rrweb's node mirror (the
 * recorded page's nodes by id) used to know what an incremental change touches.
 */
export function scrubEvent(event, mirror) {
  if (!event || typeof event !== "object") return event;
  const data = event.data;
  if (event.type === EVENT_FULL_SNAPSHOT && data && data.node) {
    scrubTree(data.node, false);
  } else if (event.type === EVENT_INCREMENTAL && data) {
    const nodeOf = (id) => (mirror && typeof id === "number" ? mirror.getNode(id) : null);
    if (data.source === SOURCE_MUTATION) {
      for (const add of data.adds || []) {
        const parent = nodeOf(add.parentId);
        const textareaParent = parent && parent.nodeName === "TEXTAREA";
        scrubTree(add.node, insideMask(parent));
        if (textareaParent && add.node && add.node.type === NODE_TEXT) add.node.textContent = maskText(add.node.textContent || "");
      }
      for (const change of data.attributes || []) {
        const attributes = change.attributes || {};
        const target = nodeOf(change.id);
        const tag = target && target.nodeName ? target.nodeName.toLowerCase() : null;
        if (typeof attributes.value === "string" && (tag === null || holdsValue(tag, target.getAttribute && target.getAttribute("type")))) {
          attributes.value = mask(attributes.value);
        }
        if (target && insideMask(target)) {
          for (const name of TEXT_ATTRIBUTES) if (typeof attributes[name] === "string") attributes[name] = maskText(attributes[name]);
        }
      }
      for (const text of data.texts || []) {
        const target = nodeOf(text.id);
        if (typeof text.value === "string" && (!target || insideMask(target) || (target.parentNode && target.parentNode.nodeName === "TEXTAREA"))) {
          text.value = maskText(text.value);
        }
      }
    } else if (data.source === SOURCE_INPUT && typeof data.text === "string") {
      const target = nodeOf(data.id);
      const type = target && target.getAttribute ? target.getAttribute("type") : null;
      if (!target || holdsValue(target.nodeName.toLowerCase(), type)) data.text = mask(data.text);
    }
  }
  return event;
}

// -- words ---------------------------------------------------------------------------------------------
/** The sharing bar's words in the widget's language (`cbw.*` in ../shared/locales). */
function words(widget) {
  const t = widget.t;
  return { sharing: t("cbw.sharing"), stop: t("cbw.stop"), agent: t("cbw.agent"), list: (names) => t.list(names) };
}

// -- one sharing session -------------------------------------------------------------------------------
const SNAPSHOT_COALESCE_MS = 60;
const POINTER_IDLE_MS = 4000;
const HIGHLIGHT_MS = 4000;

class CustomerCobrowse {
  constructor(controller, request) {
    this.controller = controller;
    this.widget = controller.widget;
    this.request = request;
    this.stopped = false;
    this.stopRecording = null;
    this.pointers = new Map(); // agent id -> {el, x, y, timer}
    this.highlights = [];
    this.onScroll = () => this.reposition();
  }

  get id() {
    return this.request.id;
  }

  start() {
    this.buildLayer();
    window.addEventListener("scroll", this.onScroll, { passive: true, capture: true });
    window.addEventListener("resize", this.onScroll, { passive: true });
    this.peer = new ServerPeer(this.widget.hub, this.request.id, {
      setup: (pc) => {
        const channel = (this.channel = pc.createDataChannel("cobrowse"));
        this.sender = new JsonSender(channel, { prefix: "w" });
        channel.addEventListener("open", () => this.startRecording());
        channel.addEventListener("close", () => this.stop("channel closed"));
        channel.addEventListener("message", jsonReceiver((m) => this.onAgentMessage(m)));
      },
      onState: (state) => {
        if (state === "failed" || state === "closed") this.stop("peer " + state);
      },
    });
    this.peer.connect().catch((err) => {
      if (this.stopped) return;
      console.warn("co-browsing could not connect", err);
      this.stop("connect failed");
      // nothing will be shared: do not leave the request hanging as accepted
      this.widget.hub.call("request.end", { request_id: this.request.id, reason: "connect_failed" }).catch(() => {});
    });
  }

  startRecording() {
    if (this.stopped || this.stopping || this.stopRecording) return;
    this.stopRecording = record({
      ...RECORD_OPTIONS,
      emit: (event) => this.emit(event),
    }) || null;
  }

  emit(event) {
    if (this.stopped || this.stopping) return;
    try {
      this.sender.send(JSON.stringify(scrubEvent(event, record.mirror)));
    } catch (err) {
      console.warn("co-browse event not sent", err);
    }
  }

  onAgentMessage(message) {
    if (!message || typeof message !== "object") return;
    switch (message.t) {
      case "snapshot_request":
        if (this.snapshotTimer || !this.stopRecording) return;
        this.snapshotTimer = setTimeout(() => {
          this.snapshotTimer = null;
          if (!this.stopped && this.stopRecording) record.takeFullSnapshot(true);
        }, SNAPSHOT_COALESCE_MS);
        return;
      case "pointer":
        return this.showPointer(message);
      case "highlight":
        return this.showHighlight(message);
      case "clear":
        return this.clearHighlights();
      default:
    }
  }

  // -- what the customer sees ---------------------------------------------------------------------------
  buildLayer() {
    const w = words(this.widget);
    this.barText = h("span", { class: "cb-bar__text" });
    this.bar = h("div", { class: "cb-bar", role: "status", "aria-live": "polite", data: { id: this.request.id } },
      h("span", { class: "cb-bar__dot", "aria-hidden": "true" }),
      this.barText,
      h("button", { class: "cb-bar__stop", type: "button", on: { click: () => this.stopByCustomer() } }, w.stop));
    this.layer = h("div", { class: "cb-layer" }, h("style", { text: css }), this.bar);
    this.widget.root.append(this.layer);
    this.renderBar();
  }

  renderBar() {
    if (!this.barText) return;
    const w = words(this.widget);
    const names = this.controller.agentNames(this.request);
    this.barText.textContent = w.sharing.replace("{agent}", names.length ? w.list(names) : w.agent);
  }

  showPointer({ from, x, y, hidden }) {
    const key = String(from || "agent");
    let pointer = this.pointers.get(key);
    if (hidden) {
      if (pointer) {
        pointer.el.remove();
        clearTimeout(pointer.timer);
        this.pointers.delete(key);
      }
      return;
    }
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    if (!pointer) {
      const el = h("div", { class: "cb-pointer", data: { agent: key } },
        h("span", { class: "cb-pointer__dot" }),
        h("span", { class: "cb-pointer__label", text: this.controller.agentName(key) }));
      pointer = { el, x, y, timer: null };
      this.pointers.set(key, pointer);
      this.layer.append(el);
    }
    pointer.x = x;
    pointer.y = y;
    pointer.el.classList.remove("is-idle");
    clearTimeout(pointer.timer);
    pointer.timer = setTimeout(() => pointer.el.classList.add("is-idle"), POINTER_IDLE_MS);
    this.placePointer(pointer);
  }

  placePointer(pointer) {
    pointer.el.style.transform = `translate(${pointer.x - window.scrollX}px, ${pointer.y - window.scrollY}px)`;
  }

  showHighlight({ from, id, x, y, w, h: height }) {
    const node = typeof id === "number" ? record.mirror.getNode(id) : null;
    const target = node && node.nodeType === 1 && !node.closest("#rtc-engage-widget") ? node : null;
    if (!target && ![x, y, w, height].every(Number.isFinite)) return;
    const el = h("div", { class: "cb-highlight", data: { agent: String(from || "") } });
    const item = { el, target, x, y, w, h: height, from };
    this.highlights.push(item);
    this.layer.append(el);
    this.placeHighlight(item);
    item.timer = setTimeout(() => {
      el.classList.add("is-fading");
      setTimeout(() => this.removeHighlight(item), 450);
    }, HIGHLIGHT_MS);
  }

  placeHighlight(item) {
    let rect;
    if (item.target && item.target.isConnected) rect = item.target.getBoundingClientRect();
    else rect = { left: item.x - window.scrollX, top: item.y - window.scrollY, width: item.w, height: item.h };
    Object.assign(item.el.style, {
      left: rect.left - 4 + "px", top: rect.top - 4 + "px", width: rect.width + 8 + "px", height: rect.height + 8 + "px",
    });
  }

  removeHighlight(item) {
    clearTimeout(item.timer);
    item.el.remove();
    this.highlights = this.highlights.filter((x) => x !== item);
  }

  clearHighlights() {
    for (const item of [...this.highlights]) this.removeHighlight(item);
  }

  reposition() {
    for (const pointer of this.pointers.values()) this.placePointer(pointer);
    for (const item of this.highlights) this.placeHighlight(item);
  }

  /** Stop: nothing more is recorded from now on; the request ends, then the peer closes (it closes
   *  even if the server cannot be told: the server then ends the session as a dropped peer). */
  async stopByCustomer() {
    this.stopping = true;
    this.stopRecorder();
    try {
      await this.widget.endRequest(this.request);
    } finally {
      this.stop("customer stopped");
    }
  }

  stopRecorder() {
    if (!this.stopRecording) return;
    try {
      this.stopRecording();
    } catch (err) {
      console.warn(err);
    }
    this.stopRecording = null;
  }

  /** Stop recording, close the peer, take the bar and the pointers away (idempotent). */
  stop(reason) {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.snapshotTimer);
    this.stopRecorder();
    if (this.peer) this.peer.close();
    window.removeEventListener("scroll", this.onScroll, { capture: true });
    window.removeEventListener("resize", this.onScroll);
    for (const pointer of this.pointers.values()) clearTimeout(pointer.timer);
    this.clearHighlights();
    if (this.layer) this.layer.remove();
    this.controller.ended(this, reason);
  }
}

// -- per widget --------------------------------------------------------------------------------------------
class CobrowseController {
  constructor(widget) {
    this.widget = widget;
    this.session = null;
    this.agents = new Map(); // agent id -> name (from rtc.participant)
    this.connectedAgents = new Map(); // request id -> Set(agent id)
    this.hubs = new WeakSet();
    window.addEventListener("pagehide", () => this.session && this.session.stop("page hidden"));
  }

  listen() {
    const hub = this.widget.hub;
    if (!hub || this.hubs.has(hub)) return;
    this.hubs.add(hub);
    hub.on("rtc.participant", (p) => this.onParticipant(p));
  }

  onParticipant({ request_id, type, participant }) {
    if (!participant || participant.kind !== "agent") return;
    if (participant.name) this.agents.set(participant.id, participant.name);
    let ids = this.connectedAgents.get(request_id);
    if (!ids) this.connectedAgents.set(request_id, (ids = new Set()));
    if (type === "connected") ids.add(participant.id);
    else if (type === "participant_left") ids.delete(participant.id);
    if (this.session && this.session.id === request_id) {
      this.session.renderBar();
      if (type === "participant_left") this.session.showPointer({ from: participant.id, hidden: true });
    }
  }

  agentName(id) {
    if (this.agents.has(id)) return this.agents.get(id);
    const conv = this.widget.model && this.widget.model.conversation;
    if (conv && conv.assignee && conv.assignee.id === id && conv.assignee.name) return conv.assignee.name;
    return this.widget.t ? this.widget.t("widget.agent") : "Agent";
  }

  /** Who sees the page: the connected agents, else the agent who asked. */
  agentNames(request) {
    const ids = [...(this.connectedAgents.get(request.id) || [])];
    if (!ids.length && request.requested_by) ids.push(request.requested_by);
    return ids.map((id) => this.agentName(id));
  }

  start(request) {
    this.listen();
    if (this.session && this.session.id === request.id) return;
    if (this.session) this.session.stop("replaced");
    this.session = new CustomerCobrowse(this, request);
    this.session.start();
  }

  update(request) {
    const session = this.session;
    if (!session || session.id !== request.id) return;
    session.request = request;
    if (request.state !== "accepted" && request.state !== "active") session.stop("request " + request.state);
  }

  ended(session) {
    if (this.session === session) this.session = null;
    this.connectedAgents.delete(session.id);
  }
}

const controllers = new WeakMap(); // widget -> CobrowseController

function controllerOf(widget) {
  let controller = controllers.get(widget);
  if (!controller) controllers.set(widget, (controller = new CobrowseController(widget)));
  return controller;
}

requestHandlers.cobrowse = {
  onAccepted(widget, request) {
    controllerOf(widget).start(request);
  },
  onUpdate(widget, request) {
    controllerOf(widget).update(request);
  },
};
