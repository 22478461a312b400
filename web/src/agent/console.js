// The console: the Socket.IO connection, the console's state, the layout (rail, Live Chat sections,
// views) and the routing of server events to the parts that show them.
import { h, icon, replace, debounce } from "../shared/dom.js";
import { Hub } from "../shared/hub.js";
import { translator } from "../shared/i18n.js";
import { ConversationModel } from "../shared/timeline.js";
import { initials } from "../shared/render.js";
import { ConversationList, SECTIONS, inSection } from "./list.js";
import { ConversationPane } from "./conversation.js";
import { CobrowseConsole } from "./cobrowse.js";
import { Notifier } from "./notify.js";
import { ProfileView } from "./profile.js";
import { toast } from "./ui.js";

export class Console {
  constructor(root, { token, agent, onLogout }) {
    this.root = root;
    this.token = token;
    this.me = agent;
    this.onLogout = onLogout;
    this.t = translator(agent.locale || "en");
    this.convs = new Map(); // id -> conversation wire shape
    this.models = new Map(); // id -> ConversationModel
    this.section = "unassigned";
    this.view = "livechat";
    this.openId = null;
    this.agents = new Map();
    this.teams = new Map();
    this.counts = {};
    this.refreshCounts = debounce(() => this.loadCounts(), 250);
  }

  // -- life cycle ------------------------------------------------------------------------------------
  start() {
    this.buildLayout();
    this.notifier = new Notifier(this);
    this.hub = new Hub("", "/agent", this.token);
    this.bindHub();
    this.onVisibility = () => {
      if (!document.hidden) this.markRead();
    };
    document.addEventListener("visibilitychange", this.onVisibility);
  }

  stop() {
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.notifier.stopAll();
    this.cobrowse.close();
    this.hub.close();
  }

  bindHub() {
    const hub = this.hub;
    hub.on("status", (s) => this.showStatus(s));
    hub.on("unauthorized", () => this.onLogout());
    hub.on("connected", ({ reconnect }) => this.onConnected(reconnect));
    hub.on("conversation.new", (p) => this.onConversationNew(p));
    hub.on("conversation.updated", (p) => this.onConversationUpdated(p.conversation));
    hub.on("message.new", (p) => this.onMessage(p.message));
    hub.on("typing", (p) => this.pane && this.pane.onTyping(p));
    hub.on("request.updated", (p) => this.onRequest(p.request));
    hub.on("conversation.receipt", (p) => this.onReceipt(p));
    hub.on("agent.presence", (p) => this.onPresence(p));
    hub.on("synced", (res) => this.onSynced(res));
  }

  async onConnected(reconnect) {
    await Promise.all([
      this.loadSection(this.section),
      this.loadCounts(),
      this.loadDirectory(),
    ]).catch((err) => console.warn("initial load failed", err));
    if (!reconnect && this.pendingOpen) {
      const id = this.pendingOpen;
      this.pendingOpen = null;
      this.openConversation(id);
    }
  }

  async loadSection(section) {
    const res = await this.hub.call("conversations.list", { section });
    for (const c of res.conversations) this.upsert(c);
    this.sectionLoaded = section;
    this.renderList();
  }

  async loadCounts() {
    try {
      const res = await this.hub.call("conversations.counts", {});
      this.counts = res.counts || {};
    } catch (err) {
      return;
    }
    this.renderBadges();
  }

  async loadDirectory() {
    const [agents, teams] = await Promise.all([this.hub.call("agents.list"), this.hub.call("teams.list")]);
    this.agents = new Map(agents.agents.map((a) => [a.id, a]));
    this.teams = new Map(teams.teams.map((t) => [t.id, t]));
    this.profile.render();
  }

  // -- state -----------------------------------------------------------------------------------------
  upsert(conv) {
    const prev = this.convs.get(conv.id);
    const merged = prev ? { ...prev, ...conv } : conv;
    if (!merged.visitor || !merged.visitor.name) {
      if (prev && prev.visitor && prev.visitor.name) merged.visitor = prev.visitor;
    }
    this.convs.set(conv.id, merged);
    const model = this.models.get(conv.id);
    if (model) model.conversation = merged;
    return merged;
  }

  model(id) {
    let model = this.models.get(id);
    if (!model) {
      model = new ConversationModel(this.convs.get(id) || { id });
      this.models.set(id, model);
    }
    return model;
  }

  myTeams() {
    if (this.me.is_admin) return null;
    return new Set(this.me.team_ids || []);
  }

  visitorName(conv) {
    const v = (conv && conv.visitor) || {};
    return v.name || v.email || "Visitor " + String(v.id || conv.id || "").slice(-4);
  }

  // -- server events ---------------------------------------------------------------------------------
  onConversationNew({ conversation, ring, redirected, note }) {
    const conv = this.upsert(conversation);
    this.renderList();
    this.refreshCounts();
    if (!ring) return;
    // Looking at the Live Chat view already: the list and its badges show it. Otherwise alert.
    if (this.view === "livechat" && !document.hidden) return;
    this.notifier.incoming(conv, { redirected, note });
  }

  onConversationUpdated(conversation) {
    const conv = this.upsert(conversation);
    const taken = (conv.assignee_id && conv.assignee_id !== this.me.id) || conv.status === "done";
    if (taken) this.notifier.stop(conv.id);
    this.renderList();
    this.refreshCounts();
    if (this.pane && this.pane.id === conv.id) this.pane.renderHeader();
    return conv;
  }

  onMessage(message) {
    const id = message.conversation_id;
    this.hub.seen(id, message.seq);
    const model = this.models.get(id);
    if (model) model.add(message);
    const conv = this.convs.get(id);
    if (conv && message.kind !== "note") {
      conv.last_message_at = message.created_at;
      if (message.kind !== "system") conv.last_message_preview = (message.body || "").slice(0, 140);
      if (message.seq > (conv.last_seq || 0)) conv.last_seq = message.seq;
    }
    if (this.pane && this.pane.id === id) {
      this.pane.renderTimeline();
      if (message.author.kind === "customer") {
        this.pane.onTyping({ conversation_id: id, author: message.author, typing: false });
        this.markRead();
      }
    }
    if (message.author.kind === "customer") this.refreshCounts();
    this.renderList();
  }

  onRequest(request) {
    const model = this.models.get(request.conversation_id);
    if (model) model.setRequest(request);
    this.requests.set(request.id, request);
    if (this.pane && this.pane.id === request.conversation_id) this.pane.renderRequests();
    this.renderCobrowseIndicator();
  }

  onReceipt({ conversation_id, side, delivered_seq, read_seq }) {
    const conv = this.convs.get(conversation_id);
    if (!conv) return;
    conv.receipts = conv.receipts || {};
    conv.receipts[side] = { delivered_seq, read_seq };
    if (this.pane && this.pane.id === conversation_id) this.pane.renderTimeline();
  }

  onPresence({ agent_id, status }) {
    const agent = this.agents.get(agent_id);
    if (agent) agent.status = status;
    if (agent_id === this.me.id) {
      this.me.status = status;
      this.renderPresence();
    }
  }

  onSynced({ conversationId, conversation, messages, requests }) {
    if (conversation) this.upsert(conversation);
    const model = this.model(conversationId);
    for (const m of messages) model.add(m);
    for (const r of requests) {
      model.setRequest(r);
      this.requests.set(r.id, r);
    }
    model.loaded = true;
    if (this.pane && this.pane.id === conversationId) {
      this.pane.renderHeader();
      this.pane.renderTimeline();
      this.pane.renderRequests();
    }
    this.renderCobrowseIndicator();
  }

  // -- actions ---------------------------------------------------------------------------------------
  async openConversation(id) {
    if (!this.hub.connected && !this.convs.has(id)) {
      this.pendingOpen = id;
    }
    this.notifier.stop(id);
    const conv = this.convs.get(id);
    if (conv) {
      const section = SECTIONS.find((s) => inSection(conv, s.id, this.me, this.myTeams()));
      if (section && section.id !== this.section) this.selectSection(section.id);
    }
    this.setView("livechat");
    this.openId = id;
    if (this.pane) this.pane.destroy();
    const model = this.model(id);
    this.pane = new ConversationPane(this, model);
    replace(this.convSlot, this.pane.el);
    this.renderList();
    this.hub.track(id);
    try {
      await this.hub.sync(id, model.loaded ? model.lastSeq : 0);
    } catch (err) {
      toast(this, "Could not open the conversation: " + err.message, "error");
      return;
    }
    this.markRead();
    this.pane.focus();
  }

  markRead() {
    if (!this.pane || document.hidden || this.view !== "livechat") return;
    const id = this.pane.id;
    const seq = this.hub.lastSeq.get(id) || 0;
    const conv = this.convs.get(id);
    if (!seq || (conv && conv.receipts && conv.receipts.agent && conv.receipts.agent.read_seq >= seq && !conv.unread)) return;
    this.hub.call("message.read", { conversation_id: id, seq }).catch(() => {});
  }

  selectSection(section) {
    this.section = section;
    this.list.searchResults = null;
    for (const el of this.sectionEls.values()) el.classList.toggle("is-active", el.dataset.section === section);
    this.setView("livechat");
    this.renderList();
    this.loadSection(section).catch((err) => console.warn(err));
  }

  setView(view) {
    this.view = view;
    for (const [name, el] of Object.entries(this.views)) el.hidden = name !== view;
    for (const el of this.rail.querySelectorAll("[data-view]")) el.classList.toggle("is-active", el.dataset.view === view);
    this.root.querySelector(".sections").classList.toggle("is-dimmed", view !== "livechat");
    if (view === "livechat") this.markRead();
  }

  // -- rendering -------------------------------------------------------------------------------------
  buildLayout() {
    this.requests = new Map();
    const railItem = (view, iconName, label, extra) =>
      h("button", { class: "rail__item", type: "button", title: label, "aria-label": label, data: { view },
        on: { click: () => this.setView(view) } }, icon(iconName, 22), extra);
    this.railBadge = h("span", { class: "badge badge--rail", hidden: true });
    this.cobrowseDot = h("span", { class: "rail__blink", hidden: true });
    this.presenceDot = h("span", { class: "presence-dot" });
    this.rail = h("aside", { class: "rail" },
      h("div", { class: "rail__logo", title: "Engage", text: "e" }),
      railItem("livechat", "chat", "Live Chat", this.railBadge),
      railItem("cobrowse", "cobrowse", "Co-Browsing", this.cobrowseDot),
      h("div", { class: "rail__spacer" }),
      h("button", { class: "rail__item rail__me", type: "button", title: "Profile and settings", data: { view: "profile" },
        "aria-label": "Profile and settings", on: { click: () => this.setView("profile") } },
        h("span", { class: "avatar avatar--sm", text: initials(this.me.name) }), this.presenceDot),
      h("button", { class: "rail__item", type: "button", title: "Sign out", "aria-label": "Sign out",
        on: { click: () => this.onLogout() } }, icon("logout", 20)));

    this.sectionEls = new Map();
    this.badgeEls = new Map();
    const sectionIcons = { unassigned: "inbox", mine: "mine", team: "team", done: "done" };
    const items = SECTIONS.map((s) => {
      const badge = h("span", { class: "badge", hidden: true });
      this.badgeEls.set(s.id, badge);
      const el = h("button", { class: ["section", s.id === this.section && "is-active"], type: "button",
        data: { section: s.id }, on: { click: () => this.selectSection(s.id) } },
        icon(sectionIcons[s.id], 18), h("span", { class: "section__label", text: s.label }), badge);
      this.sectionEls.set(s.id, el);
      return el;
    });
    const search = h("input", { type: "search", class: "sections__search", placeholder: "Search conversations",
      on: { input: debounce(() => this.search(search.value), 300) } });
    const sections = h("nav", { class: "sections", "aria-label": "Live Chat" },
      h("div", { class: "sections__title" }, h("span", { text: "Live Chat" })),
      h("div", { class: "sections__list" }, items),
      h("div", { class: "sections__searchbox" }, icon("search", 16), search));

    this.list = new ConversationList(this);
    this.convSlot = h("section", { class: "conv-slot" }, emptyConversation());
    this.profile = new ProfileView(this);
    this.cobrowseView = h("div", { class: "view view--cobrowse" });
    this.cobrowse = new CobrowseConsole(this); // the view's content, the live replays (./cobrowse.js)
    this.views = {
      livechat: h("div", { class: "view view--livechat" }, this.list.el, this.convSlot),
      profile: this.profile.el,
      cobrowse: this.cobrowseView,
    };
    this.banner = h("div", { class: "banner", role: "status", hidden: true });
    this.toasts = h("div", { class: "toasts", "aria-live": "polite" });
    replace(this.root, h("div", { class: "console" },
      this.rail, sections,
      h("main", { class: "main" }, this.banner, Object.values(this.views)),
      this.toasts));
    this.setView("livechat");
    this.renderPresence();
    this.renderCobrowseView();
  }

  renderList() {
    this.list.render();
  }

  renderBadges() {
    let total = 0;
    for (const s of SECTIONS) {
      const c = this.counts[s.id];
      const badge = this.badgeEls.get(s.id);
      if (!badge) continue;
      // New/Unassigned counts conversations waiting for someone; the others count unread messages.
      const n = !c ? 0 : s.id === "unassigned" ? c.count : c.unread;
      badge.textContent = n > 99 ? "99+" : String(n);
      badge.hidden = !n;
      badge.classList.toggle("badge--alert", s.id === "unassigned");
      if (s.id !== "team") total += n;
    }
    this.railBadge.textContent = total > 99 ? "99+" : String(total);
    this.railBadge.hidden = !total;
  }

  renderPresence() {
    const status = this.me.status === "away" ? "away" : "online";
    this.presenceDot.className = "presence-dot presence-dot--" + status;
    if (this.profile) this.profile.render();
  }

  renderCobrowseIndicator() {
    const active = [...this.requests.values()].some((r) => r.kind === "cobrowse" && (r.state === "accepted" || r.state === "active"));
    this.cobrowseDot.hidden = !active;
    this.renderCobrowseView();
  }

  renderCobrowseView() {
    this.cobrowse.render();
  }

  showStatus({ online, reconnect }) {
    clearTimeout(this.bannerTimer);
    if (!online) {
      if (!this.hub.everConnected) return;
      this.banner.className = "banner banner--offline";
      this.banner.textContent = "Reconnecting…";
      this.banner.hidden = false;
      return;
    }
    if (reconnect) {
      this.banner.className = "banner banner--online";
      this.banner.textContent = "Back online";
      this.banner.hidden = false;
      this.bannerTimer = setTimeout(() => (this.banner.hidden = true), 2500);
    } else {
      this.banner.hidden = true;
    }
  }

  async search(q) {
    q = q.trim();
    if (q.length < 2) {
      this.list.searchResults = null;
      this.renderList();
      return;
    }
    try {
      const res = await this.hub.call("conversations.search", { q });
      for (const c of res.conversations) this.upsert(c);
      this.list.searchResults = res.conversations.map((c) => c.id);
    } catch (err) {
      this.list.searchResults = [];
    }
    this.setView("livechat");
    this.renderList();
  }
}

function emptyConversation() {
  return h("div", { class: "conv-empty" },
    h("div", { class: "conv-empty__icon" }, icon("chat", 40)),
    h("h2", { text: "No conversation selected" }),
    h("p", { class: "muted", text: "Pick a conversation from the list, or wait for a new one: you will hear the ringtone." }));
}
