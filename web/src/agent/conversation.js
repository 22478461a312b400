// The open conversation: header (who, request buttons, Assign to me, redirect, resolve, status),
// live request chips, the timeline and the composer.
import { errorText } from "../shared/i18n.js";
import { h, icon, replace } from "../shared/dom.js";
import { renderMessage, initials, safeUrl } from "../shared/render.js";
import { isLive } from "../shared/timeline.js";
import { Composer } from "./composer.js";
import { redirectDialog } from "./pickers.js";
import { menu, toast } from "./ui.js";

// The request buttons of the header (labels: `req.<kind>`); Request desktop opens a menu with Show screen.
const REQUEST_BUTTONS = [
  { kind: "call", icon: "phone" },
  { kind: "video", icon: "camera" },
  { kind: "desktop", icon: "desktop", menu: true },
  { kind: "conference", icon: "conference" },
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
    // Request changes and the customer's messages are announced by the console (app.announce): the
    // regions are drawn again as a whole, so they are not live regions themselves.
    this.requestsEl = h("div", { class: "conv__requests", role: "group", "aria-label": app.t("chip.live_requests") });
    this.timeline = h("div", { class: "conv__timeline", role: "log", "aria-live": "off", tabindex: "0",
      "aria-label": app.t("conv.timeline") });
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
    const t = app.t;
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
        on: { click: () => this.assignToMe() } }, t("conv.assign"))
      : null;
    const assignee = conv.assignee
      ? h("span", { class: "assignee", title: t("conv.assignee") },
        h("span", { class: "sr-only", text: t("conv.assignee") + ": " }),
        h("span", { class: "avatar avatar--xs", "aria-hidden": "true", text: initials(conv.assignee.name) }),
        h("span", { text: mine ? t("conv.you") : conv.assignee.name }))
      : null;
    const redirect = h("button", { class: "iconbtn iconbtn--orange", type: "button", id: "redirect", title: t("conv.redirect_title"),
      "aria-label": t("conv.redirect_title"), "aria-haspopup": "dialog", on: { click: () => this.redirect() } }, icon("redirect", 20));
    const resolveLabel = open ? t("conv.resolve") : t("conv.resolved");
    const resolve = h("button", { class: ["iconbtn", "iconbtn--green", !open && "is-done"], type: "button", id: "resolve",
      title: resolveLabel, "aria-label": resolveLabel, disabled: !open,
      on: { click: () => this.setStatus("done") } }, icon("check", 20));
    const status = h("select", { class: "status-select", id: "status",
      on: { change: (e) => this.setStatus(e.target.value) } },
      h("option", { value: "open", text: t("conv.status_open"), selected: open }),
      h("option", { value: "done", text: t("conv.status_done"), selected: !open }));
    status.value = open ? "open" : "done";

    // Drawn again on every change: keep the keyboard focus on the control that had it.
    const active = document.activeElement;
    const focused = active && this.header.contains(active) ? (active.id ? "#" + active.id
      : active.dataset.kind ? `.reqbtn[data-kind="${active.dataset.kind}"]` : "") : "";
    replace(this.header,
      h("div", { class: "conv__who" },
        h("span", { class: "avatar avatar--lg", "aria-hidden": "true", text: initials(name) }),
        h("div", {},
          h("h2", { class: "conv__name", text: name }),
          h("div", { class: "conv__sub" }, sub))),
      h("div", { class: "conv__actions" },
        h("div", { class: "reqbtns", role: "group", "aria-label": t("conv.requests") }, reqButtons,
          this.app.calls ? this.app.calls.recordToggle(open) : null),
        h("span", { class: "divider", "aria-hidden": "true" }),
        assignee, assign, redirect, resolve,
        h("label", { class: "status-label" }, h("span", { text: t("conv.status") }), status)));
    if (focused) {
      const again = this.header.querySelector(focused);
      if (again && !again.disabled) again.focus();
      else if (focused === "#assign-to-me") this.focus(); // assigned: on to the input field
    }
  }

  requestButton(b, open) {
    const latest = this.latestRequest(b.kind === "desktop" ? ["desktop", "show_screen"] : [b.kind]);
    const live = latest && isLive(latest);
    const state = live ? latest.state : "";
    const t = this.app.t;
    const base = b.menu ? t("req.desktop_menu") : t("req." + b.kind);
    // the state is part of the name: "Call: Accepted" (the green indicator), "Call: Waiting for answer"
    const label = state ? t("conv.request_state", { label: base, state: t("state." + state) }) : base;
    const btn = h("button", { class: ["reqbtn", state && "reqbtn--" + state], type: "button", title: label,
      "aria-label": label, data: { kind: b.kind }, disabled: !open, "aria-haspopup": b.menu ? "menu" : null,
      "aria-expanded": b.menu ? "false" : null,
      on: { click: () => (b.menu ? this.desktopMenu(btn) : this.createRequest(b.kind)) } },
    icon(b.icon, 19),
    state === "pending" ? h("span", { class: "spinner spinner--xs", "aria-hidden": "true" }) : null,
    state === "accepted" || state === "active" ? h("span", { class: "green-dot", role: "img", "aria-label": t("state." + state) }) : null,
    b.menu ? icon("chevronDown", 12) : null);
    return btn;
  }

  desktopMenu(anchor) {
    const t = this.app.t;
    menu(anchor, [
      { label: t("req.desktop"), icon: "desktop", onSelect: () => this.createRequest("desktop") },
      { label: t("req.show_screen"), icon: "screen", onSelect: () => this.createRequest("show_screen") },
    ], { label: t("req.desktop_menu") });
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
      toast(this.app, err.code === "conflict" ? this.app.t("conv.taken") : errorText(this.app.t, err), "error");
    }
  }

  async redirect() {
    const choice = await redirectDialog(this.app, this.conv);
    if (!choice) return;
    try {
      const res = await this.app.hub.call("conversation.assign", { conversation_id: this.id, ...choice });
      this.app.onConversationUpdated(res.conversation);
      toast(this.app, this.app.t("conv.redirected"), "success");
    } catch (err) {
      toast(this.app, errorText(this.app.t, err), "error");
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
      toast(this.app, errorText(this.app.t, err), "error");
      this.renderHeader();
    }
  }

  // -- requests --------------------------------------------------------------------------------------
  async createRequest(kind) {
    try {
      const payload = { conversation_id: this.id, kind };
      if (this.app.calls && this.app.calls.recordFor(kind)) payload.record = true;
      const res = await this.app.hub.call("request.create", payload);
      this.app.onRequest(res.request);
    } catch (err) {
      toast(this.app, errorText(this.app.t, err), "error");
    }
  }

  async endRequest(request) {
    try {
      const res = await this.app.hub.call("request.end", { request_id: request.id });
      this.app.onRequest(res.request);
    } catch (err) {
      toast(this.app, errorText(this.app.t, err), "error");
    }
  }

  renderRequests() {
    const t = this.app.t;
    const reqs = [...this.model.requests.values()]
      .filter((r) => isLive(r) || (!this.dismissed.has(r.id) && recent(r)))
      .sort((a, b) => (a.created_at < b.created_at ? -1 : 1));
    replace(this.requestsEl, reqs.map((r) => {
      const live = isLive(r);
      const indicator = r.state === "pending" ? h("span", { class: "spinner", "aria-hidden": "true" })
        : r.state === "accepted" || r.state === "active" ? h("span", { class: "green-dot", "aria-hidden": "true", title: t("state." + r.state) })
          : h("span", { class: "grey-dot", "aria-hidden": "true" });
      const kindLabel = t("kind." + r.kind);
      const action = live
        ? h("button", { class: "btn btn--small " + (r.state === "pending" ? "btn--ghost" : "btn--danger"), type: "button",
          "aria-label": t(r.state === "pending" ? "chip.cancel_label" : "chip.end_label", { kind: kindLabel }),
          on: { click: () => this.endRequest(r) } }, r.state === "pending" ? t("chip.cancel") : t("chip.end"))
        : h("button", { class: "iconbtn iconbtn--small", type: "button", "aria-label": t("chip.dismiss_label", { kind: kindLabel }),
          title: t("chip.dismiss"), on: { click: () => { this.dismissed.add(r.id); this.renderRequests(); } } }, icon("close", 14));
      const reason = r.reason ? " (" + (t.has("reason." + r.reason) ? t("reason." + r.reason) : r.reason.replace(/_/g, " ")) + ")" : "";
      return h("div", { class: "reqchip reqchip--" + r.state, role: "group", "aria-label": kindLabel,
        data: { kind: r.kind, state: r.state, id: r.id } },
      indicator,
      h("span", { class: "reqchip__kind", text: kindLabel }),
      h("span", { class: "reqchip__state", text: t("state." + r.state) + reason }),
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
