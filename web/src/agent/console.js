// The console: the Socket.IO connection, the console's state, the layout (rail, Live Chat sections,
// views) and the routing of server events to the parts that show them.
import { h, icon, replace, debounce, announcer } from "../shared/dom.js";
import { Hub } from "../shared/hub.js";
import { browserLanguage, errorText, translator } from "../shared/i18n.js";
import { ConversationModel, isLive } from "../shared/timeline.js";
import { initials } from "../shared/render.js";
import { ConversationList, SECTIONS, inSection } from "./list.js";
import { ConversationPane } from "./conversation.js";
import { CobrowseConsole } from "./cobrowse.js";
import { Notifier } from "./notify.js";
import { ProfileView } from "./profile.js";
import { toast } from "./ui.js";
import { updateMe } from "./api.js";
import { callStrings } from "../shared/media.js";

export class Console {
  constructor(root, { token, agent, onLogout }) {
    this.root = root;
    this.token = token;
    this.me = agent;
    this.onLogout = onLogout;
    this.t = translator(agent.locale || browserLanguage());
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
    this.applyDocumentLanguage();
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
      this.loadLiveRequests(),
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

  /**
   * `requests.live`: the live requests of every conversation this agent may see, so that after a reload
   * or a reconnect the request chips, the rail's co-browse dot and the Co-Browsing view's list come back.
   * A request this tab knew as live that is not listed any more ended meanwhile: its conversation is
   * synced to learn how.
   */
  async loadLiveRequests() {
    const res = await this.hub.call("requests.live", {});
    for (const c of res.conversations || []) this.upsert(c);
    const listed = new Set();
    for (const r of res.requests || []) {
      listed.add(r.id);
      const known = this.requests.get(r.id);
      if (known && known.updated_at && r.updated_at && known.updated_at > r.updated_at) continue; // an event was newer
      this.onRequest(r);
    }
    const ended = new Set([...this.requests.values()].filter((r) => isLive(r) && !listed.has(r.id)).map((r) => r.conversation_id));
    for (const id of ended) this.hub.sync(id).catch((err) => console.warn("sync failed", id, err));
    this.renderList();
    this.renderCobrowseIndicator();
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
    return v.name || v.email || this.t("visitor.anonymous", { id: String(v.id || conv.id || "").slice(-4) });
  }

  // -- server events ---------------------------------------------------------------------------------
  onConversationNew({ conversation, ring, redirected, note }) {
    const conv = this.upsert(conversation);
    this.renderList();
    this.refreshCounts();
    if (!ring) return;
    this.announce.polite(this.t("announce.new_conversation", { name: this.visitorName(conv) }));
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
      // as the server keeps it: any kind but notes, a system message's code and params beside its English text
      conv.last_message_preview = (message.body || "").slice(0, 140);
      conv.last_message_system = message.kind === "system" && message.code ? { code: message.code, params: message.params || {} } : null;
      if (message.seq > (conv.last_seq || 0)) conv.last_seq = message.seq;
    }
    if (this.pane && this.pane.id === id) {
      this.pane.renderTimeline();
      if (message.author.kind === "customer") {
        this.pane.onTyping({ conversation_id: id, author: message.author, typing: false });
        this.markRead();
      }
    }
    if (message.author.kind === "customer") {
      this.refreshCounts();
      if (conv) this.announce.polite(this.t("announce.message", { name: this.visitorName(conv), text: announcedText(message, this.t) }));
    }
    this.renderList();
  }

  onRequest(request) {
    const known = this.requests.get(request.id);
    if (known && known.state !== request.state && this.pane && this.pane.id === request.conversation_id) {
      this.announce.assertive(this.t("conv.request_state", { label: this.t("kind." + request.kind), state: this.t("state." + request.state) }));
    }
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
      toast(this, this.t("conv.open_failed", { message: errorText(this.t, err) }), "error");
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
    for (const el of this.sectionEls.values()) {
      el.classList.toggle("is-active", el.dataset.section === section);
      if (el.dataset.section === section) el.setAttribute("aria-current", "true");
      else el.removeAttribute("aria-current");
    }
    this.setView("livechat");
    this.renderList();
    this.loadSection(section).catch((err) => console.warn(err));
  }

  setView(view) {
    this.view = view;
    for (const [name, el] of Object.entries(this.views)) el.hidden = name !== view;
    for (const el of this.rail.querySelectorAll("[data-view]")) {
      el.classList.toggle("is-active", el.dataset.view === view);
      if (el.dataset.view === view) el.setAttribute("aria-current", "page");
      else el.removeAttribute("aria-current");
    }
    this.root.querySelector(".sections").classList.toggle("is-dimmed", view !== "livechat");
    if (view === "livechat") this.markRead();
  }

  // -- language --------------------------------------------------------------------------------------
  /** Save the agent's language (PATCH /api/me) and draw the console again in it. */
  async setLocale(locale) {
    const agent = await updateMe(this.token, { locale });
    this.me = { ...this.me, ...(agent && agent.id ? agent : {}), locale };
    this.t = translator(locale);
    this.relabel();
  }

  applyDocumentLanguage() {
    document.documentElement.lang = this.t.lang;
    document.title = this.t("console.title");
  }

  /** Everything drawn with words, drawn again (after a language change). */
  relabel() {
    this.applyDocumentLanguage();
    const oldRail = this.rail;
    const oldSections = this.sectionsNav;
    this.buildChrome();
    oldRail.replaceWith(this.rail);
    oldSections.replaceWith(this.sectionsNav);
    this.setView(this.view);
    // the Co-Browsing view is drawn anew unless a session is live in it (a replay's iframe must not move)
    if (this.cobrowse.sessions.size === 0) this.cobrowse = new CobrowseConsole(this);
    this.renderBadges();
    this.renderPresence();
    this.renderCobrowseIndicator();
    this.renderList();
    if (this.pane) {
      const model = this.pane.model;
      this.pane.destroy();
      this.pane = new ConversationPane(this, model);
      replace(this.convSlot, this.pane.el);
    } else {
      replace(this.convSlot, emptyConversation(this.t));
    }
    if (this.calls) this.calls.s = callStrings(this.t.lang); // the call UI's words (calls in progress keep theirs)
  }

  // -- rendering -------------------------------------------------------------------------------------
  /** The rail and the Live Chat sections (their words come from the catalogue). */
  buildChrome() {
    const t = this.t;
    const railItem = (view, iconName, label, extra) =>
      h("button", { class: "rail__item", type: "button", title: label, "aria-label": label, data: { view },
        on: { click: () => this.setView(view) } }, icon(iconName, 22), extra);
    this.railBadge = h("span", { class: "badge badge--rail", "aria-hidden": "true", hidden: true });
    // The blinking dot of a live co-browse session; its button's name says it for screen readers.
    this.cobrowseDot = h("span", { class: "rail__blink", role: "img", "aria-label": t("rail.cobrowse_dot"), hidden: true });
    this.presenceDot = h("span", { class: "presence-dot", "aria-hidden": "true" });
    this.railLive = railItem("livechat", "chat", t("rail.livechat"), this.railBadge);
    this.railCobrowse = railItem("cobrowse", "cobrowse", t("rail.cobrowse"), this.cobrowseDot);
    this.rail = h("nav", { class: "rail", "aria-label": t("rail.nav") },
      h("div", { class: "rail__logo", "aria-hidden": "true", text: "e" }),
      this.railLive,
      this.railCobrowse,
      h("div", { class: "rail__spacer" }),
      h("button", { class: "rail__item rail__me", type: "button", title: t("rail.profile"), data: { view: "profile" },
        "aria-label": t("rail.profile"), on: { click: () => this.setView("profile") } },
      // initials drawn by CSS: the button's name is "Profile and settings", its visible text is none
      h("span", { class: "avatar avatar--sm avatar--initials", "aria-hidden": "true", data: { initials: initials(this.me.name) } }),
      this.presenceDot),
      h("button", { class: "rail__item", type: "button", title: t("rail.logout"), "aria-label": t("rail.logout"),
        on: { click: () => this.onLogout() } }, icon("logout", 20)));

    this.sectionEls = new Map();
    this.badgeEls = new Map();
    const sectionIcons = { unassigned: "inbox", mine: "mine", team: "team", done: "done" };
    const items = SECTIONS.map((s) => {
      const badge = h("span", { class: "badge", "aria-hidden": "true", hidden: true });
      this.badgeEls.set(s.id, badge);
      const el = h("button", { class: ["section", s.id === this.section && "is-active"], type: "button",
        "aria-current": s.id === this.section ? "true" : null,
        data: { section: s.id }, on: { click: () => this.selectSection(s.id) } },
      icon(sectionIcons[s.id], 18), h("span", { class: "section__label", text: t("section." + s.id) }), badge);
      this.sectionEls.set(s.id, el);
      return el;
    });
    const search = h("input", { type: "search", class: "sections__search", placeholder: t("sections.search"),
      "aria-label": t("sections.search"), value: this.searchText || "",
      on: { input: debounce(() => this.search((this.searchText = search.value)), 300) } });
    this.sectionsNav = h("nav", { class: "sections", "aria-labelledby": "sections-title" },
      h("div", { class: "sections__title" }, h("h2", { id: "sections-title", text: t("sections.title") })),
      h("div", { class: "sections__list" }, items),
      h("div", { class: "sections__searchbox", role: "search" }, icon("search", 16), search));
  }

  buildLayout() {
    this.requests = new Map();
    this.buildChrome();
    this.list = new ConversationList(this);
    this.convSlot = h("section", { class: "conv-slot" }, emptyConversation(this.t));
    this.profile = new ProfileView(this);
    this.cobrowseView = h("div", { class: "view view--cobrowse" });
    this.cobrowse = new CobrowseConsole(this); // the view's content, the live replays (./cobrowse.js)
    this.views = {
      livechat: h("div", { class: "view view--livechat" }, this.list.el, this.convSlot),
      profile: this.profile.el,
      cobrowse: this.cobrowseView,
    };
    // connection state: said once when it drops and once when it is back
    this.banner = h("div", { class: "banner", role: "status", "aria-live": "polite", hidden: true });
    this.toasts = h("div", { class: "toasts" });
    const shell = h("div", { class: "console" },
      this.rail, this.sectionsNav,
      h("main", { class: "main" }, this.banner, Object.values(this.views)),
      this.toasts);
    this.announce = announcer(shell);
    replace(this.root, shell);
    this.setView("livechat");
    this.renderPresence();
    this.renderCobrowseView();
  }

  renderList() {
    this.list.render();
  }

  renderBadges() {
    const t = this.t;
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
      const label = t("section." + s.id);
      const el = this.sectionEls.get(s.id);
      if (n) el.setAttribute("aria-label", t.plural(s.id === "unassigned" ? "section.waiting" : "section.unread", n, { label }));
      else el.removeAttribute("aria-label");
      if (s.id !== "team") total += n;
    }
    this.railBadge.textContent = total > 99 ? "99+" : String(total);
    this.railBadge.hidden = !total;
    this.railLive.setAttribute("aria-label", total ? t.plural("rail.livechat_unread", total) : t("rail.livechat"));
  }

  renderPresence() {
    const status = this.me.status === "away" ? "away" : "online";
    this.presenceDot.className = "presence-dot presence-dot--" + status;
    this.presenceDot.title = this.t("presence." + status);
    if (this.profile) this.profile.render();
  }

  renderCobrowseIndicator() {
    const active = [...this.requests.values()].some((r) => r.kind === "cobrowse" && (r.state === "accepted" || r.state === "active"));
    this.cobrowseDot.hidden = !active;
    const label = active ? this.t("rail.cobrowse_live") : this.t("rail.cobrowse");
    this.railCobrowse.setAttribute("aria-label", label);
    this.railCobrowse.title = label;
    this.renderCobrowseView();
  }

  renderCobrowseView() {
    this.cobrowse.render();
  }

  showStatus({ online, reconnect, retrying }) {
    clearTimeout(this.bannerTimer);
    if (!online) {
      // a first connect that fails is quiet, unless the server asked to come back later (rate_limited)
      if (!this.hub.everConnected && !retrying) return;
      this.banner.className = "banner banner--offline";
      this.banner.textContent = this.t("reconnecting");
      this.banner.hidden = false;
      return;
    }
    if (reconnect) {
      this.banner.className = "banner banner--online";
      this.banner.textContent = this.t("online_again");
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

function emptyConversation(t) {
  return h("div", { class: "conv-empty" },
    h("div", { class: "conv-empty__icon", "aria-hidden": "true" }, icon("chat", 40)),
    h("h2", { text: t("conv.empty_title") }),
    h("p", { class: "muted", text: t("conv.empty_text") }));
}

/** What a screen reader hears of a new message: its text, or the attachment's name. */
function announcedText(message, t) {
  if (message.attachment && message.attachment.name) return message.attachment.name;
  if (message.kind === "flow_answer" && message.flow_answer) return message.flow_answer.answer || message.body || "";
  return (message.body || t("kind." + message.kind) || "").slice(0, 200);
}
