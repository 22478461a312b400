// The open conversation: header (who, request buttons, Assign to me, redirect, resolve, status),
// live request chips, the timeline and the composer.
import { h, icon, replace } from "../shared/dom.js";
import { renderMessage, initials, safeUrl } from "../shared/render.js";
import { isLive } from "../shared/timeline.js";
import { Composer } from "./composer.js";
import { redirectDialog } from "./pickers.js";
import { menu, toast } from "./ui.js";

const REQUEST_BUTTONS = [
  { kind: "call", icon: "phone", label: "Call" },
  { kind: "video", icon: "camera", label: "Video call" },
  { kind: "desktop", icon: "desktop", label: "Request desktop", menu: true },
  { kind: "conference", icon: "conference", label: "Conference call" },
];

/** Per request kind, what the console does once the customer accepts (filled in by media modules). */
export const requestHandlers = {};

export class ConversationPane {
  constructor(app, model) {
    this.app = app;
    this.model = model;
    this.id = model.id;
    this.rendered = new Map(); // key -> element
    this.dismissed = new Set();
    this.header = h("header", { class: "conv__header" });
    this.requestsEl = h("div", { class: "conv__requests", "aria-live": "polite" });
    this.timeline = h("div", { class: "conv__timeline", role: "log", "aria-label": "Conversation" });
    this.typingEl = h("div", { class: "conv__typing", "aria-live": "polite" });
    this.composer = new Composer(app, this);
    this.el = h("div", { class: "conv", data: { id: this.id } },
      this.header, this.requestsEl, this.timeline, this.typingEl, this.composer.el);
    this.renderHeader();
    this.renderRequests();
    this.renderTimeline();
  }

  get conv() {
    return this.app.convs.get(this.id) || this.model.conversation;
  }

  destroy() {
    this.composer.destroy();
    clearTimeout(this.typingTimer);
  }

  focus() {
    this.composer.focus();
  }

  // -- header ----------------------------------------------------------------------------------------
  renderHeader() {
    const app = this.app;
    const conv = this.conv;
    const visitor = conv.visitor || {};
    const name = app.visitorName(conv);
    const team = app.teams.get(conv.team_id);
    const mine = conv.assignee_id === app.me.id;
    const open = conv.status !== "done";
    const page = safeUrl(conv.page_url || "");
    const sub = [
      visitor.email ? h("span", { text: visitor.email }) : null,
      page ? h("a", { href: page, target: "_blank", rel: "noopener noreferrer", class: "conv__page", text: shortUrl(page) }) : null,
      team ? h("span", { class: "tag", text: team.name }) : null,
    ].filter(Boolean);

    const reqButtons = REQUEST_BUTTONS.map((b) => this.requestButton(b, open));
    // Someone else's conversation is handed over with the redirect control, not taken.
    const assign = open && !conv.assignee_id
      ? h("button", { class: "btn btn--primary", type: "button", id: "assign-to-me",
        on: { click: () => this.assignToMe() } }, "Assign to me")
      : null;
    const assignee = conv.assignee
      ? h("span", { class: "assignee", title: "Assignee" }, h("span", { class: "avatar avatar--xs", text: initials(conv.assignee.name) }),
        h("span", { text: mine ? "You" : conv.assignee.name }))
      : null;
    const redirect = h("button", { class: "iconbtn iconbtn--orange", type: "button", id: "redirect", title: "Redirect to an agent or a team",
      "aria-label": "Redirect", on: { click: () => this.redirect() } }, icon("redirect", 20));
    const resolve = h("button", { class: ["iconbtn", "iconbtn--green", !open && "is-done"], type: "button", id: "resolve",
      title: open ? "Resolve (move to Done)" : "Resolved", "aria-label": "Resolve", disabled: !open,
      on: { click: () => this.setStatus("done") } }, icon("check", 20));
    const status = h("select", { class: "status-select", id: "status", "aria-label": "Status",
      on: { change: (e) => this.setStatus(e.target.value) } },
      h("option", { value: "open", text: "Open", selected: open }),
      h("option", { value: "done", text: "Done", selected: !open }));
    status.value = open ? "open" : "done";

    replace(this.header,
      h("div", { class: "conv__who" },
        h("span", { class: "avatar avatar--lg", text: initials(name) }),
        h("div", {},
          h("div", { class: "conv__name", text: name }),
          h("div", { class: "conv__sub" }, sub))),
      h("div", { class: "conv__actions" },
        h("div", { class: "reqbtns", role: "group", "aria-label": "Requests" }, reqButtons),
        h("span", { class: "divider" }),
        assignee, assign, redirect, resolve,
        h("label", { class: "status-label" }, h("span", { text: "Status" }), status)));
  }

  requestButton(b, open) {
    const latest = this.latestRequest(b.kind === "desktop" ? ["desktop", "show_screen"] : [b.kind]);
    const live = latest && isLive(latest);
    const state = live ? latest.state : "";
    const btn = h("button", { class: ["reqbtn", state && "reqbtn--" + state], type: "button", title: b.label,
      "aria-label": b.label, data: { kind: b.kind }, disabled: !open,
      on: { click: () => (b.menu ? this.desktopMenu(btn) : this.createRequest(b.kind)) } },
      icon(b.icon, 19),
      state === "pending" ? h("span", { class: "spinner spinner--xs" }) : null,
      state === "accepted" || state === "active" ? h("span", { class: "green-dot" }) : null,
      b.menu ? icon("chevronDown", 12) : null);
    return btn;
  }

  desktopMenu(anchor) {
    menu(anchor, [
      { label: "Request desktop", icon: "desktop", onSelect: () => this.createRequest("desktop") },
      { label: "Show screen", icon: "screen", onSelect: () => this.createRequest("show_screen") },
    ]);
  }

  latestRequest(kinds) {
    let latest = null;
    for (const r of this.model.requests.values()) {
      if (!kinds.includes(r.kind)) continue;
      if (!latest || r.created_at > latest.created_at) latest = r;
    }
    return latest;
  }

  async assignToMe() {
    try {
      const res = await this.app.hub.call("conversation.assign", { conversation_id: this.id });
      this.app.onConversationUpdated(res.conversation);
      this.app.selectSection("mine");
    } catch (err) {
      toast(this.app, err.code === "conflict" ? "Someone else took this conversation first." : err.message, "error");
    }
  }

  async redirect() {
    const choice = await redirectDialog(this.app, this.conv);
    if (!choice) return;
    try {
      const res = await this.app.hub.call("conversation.assign", { conversation_id: this.id, ...choice });
      this.app.onConversationUpdated(res.conversation);
      toast(this.app, "Conversation redirected.", "success");
    } catch (err) {
      toast(this.app, err.message, "error");
    }
  }

  async setStatus(status) {
    try {
      const res = await this.app.hub.call("conversation.status", { conversation_id: this.id, status });
      const conv = this.app.onConversationUpdated(res.conversation);
      // follow the conversation to the section it moved to
      const mine = conv.assignee_id === this.app.me.id;
      this.app.selectSection(status === "done" ? "done" : mine ? "mine" : "unassigned");
    } catch (err) {
      toast(this.app, err.message, "error");
      this.renderHeader();
    }
  }

  // -- requests --------------------------------------------------------------------------------------
  async createRequest(kind) {
    try {
      const res = await this.app.hub.call("request.create", { conversation_id: this.id, kind });
      this.app.onRequest(res.request);
    } catch (err) {
      toast(this.app, err.message, "error");
    }
  }

  async endRequest(request) {
    try {
      const res = await this.app.hub.call("request.end", { request_id: request.id });
      this.app.onRequest(res.request);
    } catch (err) {
      toast(this.app, err.message, "error");
    }
  }

  renderRequests() {
    const t = this.app.t;
    const reqs = [...this.model.requests.values()]
      .filter((r) => isLive(r) || (!this.dismissed.has(r.id) && recent(r)))
      .sort((a, b) => (a.created_at < b.created_at ? -1 : 1));
    replace(this.requestsEl, reqs.map((r) => {
      const live = isLive(r);
      const indicator = r.state === "pending" ? h("span", { class: "spinner" })
        : r.state === "accepted" || r.state === "active" ? h("span", { class: "green-dot", title: t("state." + r.state) })
          : h("span", { class: "grey-dot" });
      const action = live
        ? h("button", { class: "btn btn--small " + (r.state === "pending" ? "btn--ghost" : "btn--danger"), type: "button",
          on: { click: () => this.endRequest(r) } }, r.state === "pending" ? "Cancel" : "End")
        : h("button", { class: "iconbtn iconbtn--small", type: "button", "aria-label": "Dismiss",
          on: { click: () => { this.dismissed.add(r.id); this.renderRequests(); } } }, icon("close", 14));
      return h("div", { class: "reqchip reqchip--" + r.state, data: { kind: r.kind, state: r.state, id: r.id } },
        indicator,
        h("span", { class: "reqchip__kind", text: t("kind." + r.kind) }),
        h("span", { class: "reqchip__state", text: t("state." + r.state) + (r.reason ? " (" + r.reason.replace(/_/g, " ") + ")" : "") }),
        action);
    }));
    this.requestsEl.hidden = reqs.length === 0;
    this.renderHeader();
    for (const r of reqs) {
      const handler = requestHandlers[r.kind];
      if (handler) handler(this.app, r);
    }
  }

  // -- timeline --------------------------------------------------------------------------------------
  renderTimeline() {
    const app = this.app;
    const nearBottom = this.timeline.scrollHeight - this.timeline.scrollTop - this.timeline.clientHeight < 80;
    const messages = this.model.ordered();
    const conv = this.conv;
    const receipts = (conv.receipts && conv.receipts.customer) || { delivered_seq: 0, read_seq: 0 };
    let lastAgentSeq = 0;
    for (const m of messages) if (m.seq && m.author && m.author.kind === "agent" && m.kind !== "note") lastAgentSeq = m.seq;
    const ctx = {
      viewer: "agent",
      t: app.t,
      asset: (url) => assetUrl(url, app.token),
      isMine: (m) => m.author && m.author.kind === "agent",
      authorName: (m) => (m.author.kind === "customer" ? app.visitorName(conv) : m.author.name),
    };
    const keep = new Map();
    let prev = null;
    let lastAgentEl = null;
    for (const m of messages) {
      const key = (m.pending ? "p:" + m.client_id : "s:" + m.seq) + (m.failed ? ":f" : "");
      let el = this.rendered.get(key);
      if (!el) el = renderMessage(m, ctx);
      keep.set(key, el);
      if (m.seq && m.seq === lastAgentSeq) lastAgentEl = el;
      const expected = prev ? prev.nextSibling : this.timeline.firstChild;
      if (expected !== el) this.timeline.insertBefore(el, expected);
      prev = el;
    }
    for (const [key, el] of this.rendered) if (!keep.has(key)) el.remove();
    this.rendered = keep;
    // delivered/read state under the agents' last message only, updated in place
    const state = receipts.read_seq >= lastAgentSeq ? "read" : receipts.delivered_seq >= lastAgentSeq ? "delivered" : "";
    for (const old of this.timeline.querySelectorAll(".msg__status--receipt")) {
      if (old.parentNode !== lastAgentEl || !state) old.remove();
    }
    if (lastAgentEl && state) {
      let el = lastAgentEl.querySelector(".msg__status--receipt");
      if (!el) lastAgentEl.append((el = h("div", { class: "msg__status msg__status--receipt" })));
      el.textContent = app.t("msg." + state);
      el.classList.toggle("msg__status--read", state === "read");
    }
    if (nearBottom || !this.scrolledOnce) {
      this.timeline.scrollTop = this.timeline.scrollHeight;
      if (messages.length) this.scrolledOnce = true;
    }
  }

  onTyping({ conversation_id, author, typing }) {
    if (conversation_id !== this.id || !author || author.kind !== "customer") return;
    clearTimeout(this.typingTimer);
    if (typing) {
      replace(this.typingEl, h("span", { class: "dots" }, h("i"), h("i"), h("i")),
        this.app.t("typing", { name: this.app.visitorName(this.conv) }));
      this.typingEl.classList.add("is-on");
      this.typingTimer = setTimeout(() => this.typingEl.classList.remove("is-on"), 8000);
    } else {
      this.typingEl.classList.remove("is-on");
    }
  }
}

function recent(request) {
  return Date.now() - new Date(request.updated_at).getTime() < 10 * 60 * 1000;
}

function shortUrl(url) {
  try {
    const u = new URL(url);
    return u.host + (u.pathname.length > 1 ? u.pathname : "");
  } catch {
    return url;
  }
}

/** An upload's URL with the agent's token (img/video/audio elements cannot send headers). */
export function assetUrl(url, token) {
  if (!url) return "";
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}
