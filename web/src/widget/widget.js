// The widget's behaviour: visitor token, connection, conversation, timeline, composer, flows and
// request prompts. All rendering goes through textContent (see ../shared/dom.js).
import { h, icon, replace, clientId, debounce, announcer } from "../shared/dom.js";
import { Hub } from "../shared/hub.js";
import { translator } from "../shared/i18n.js";
import { ConversationModel, isLive } from "../shared/timeline.js";
import { renderMessage } from "../shared/render.js";
import { errorText, systemText } from "../shared/i18n.js";
import { startUpload, uploadView, uploadError, kindFor } from "../shared/upload.js";
import { FlowCard } from "./flow.js";
import { requestHandlers } from "./handlers.js";

const TYPING_IDLE_MS = 2500;

export class Widget {
  constructor(root, { server, locale, team, name, email }) {
    this.root = root;
    this.server = server;
    this.locale = locale;
    this.team = team;
    this.prefill = { name, email };
    this.t = translator(locale);
    this.tokenKey = "rtc-engage.visitor:" + server;
    this.openKey = "rtc-engage.open:" + server;
    this.token = localStorage.getItem(this.tokenKey);
    this.model = null;
    this.hub = null;
    this.rendered = new Map();
    this.flowCards = new Map();
    this.readSeq = 0;
    this.deliveredSeq = 0;
    this.typingSent = false;
    this.stopTyping = debounce(() => this.sendTyping(false), TYPING_IDLE_MS);
    this.markRead = debounce(() => this.sendRead(), 200);
    this.handled = new Set();
  }

  // -- life cycle ------------------------------------------------------------------------------------
  start() {
    this.build();
    this.setOpen(sessionStorage.getItem(this.openKey) === "1");
    if (this.token) this.resume();
    document.addEventListener("visibilitychange", () => !document.hidden && this.markRead());
  }

  async resume() {
    try {
      const res = await fetch(this.server + "/api/me", { headers: { Authorization: "Bearer " + this.token } });
      if (!res.ok) throw new Error("expired");
      const me = await res.json();
      this.visitor = me.visitor;
    } catch {
      this.forget();
      return;
    }
    this.connect();
  }

  forget() {
    localStorage.removeItem(this.tokenKey);
    this.token = null;
    if (this.hub) this.hub.close();
    this.hub = null;
    this.model = null;
    this.renderBody();
  }

  connect() {
    if (this.hub) return;
    const hub = (this.hub = new Hub(this.server, "/customer", this.token));
    hub.on("status", (s) => this.showStatus(s));
    hub.on("unauthorized", () => this.forget());
    hub.on("connected", ({ reconnect }) => !reconnect && this.loadConversation());
    hub.on("message.new", ({ message }) => this.onMessage(message));
    hub.on("conversation.updated", ({ conversation }) => this.onConversation(conversation));
    hub.on("request.updated", ({ request }) => this.onRequest(request));
    hub.on("typing", (p) => this.onTyping(p));
    hub.on("synced", (res) => this.onSynced(res));
  }

  async loadConversation() {
    if (this.model) return;
    let res;
    try {
      res = await this.hub.call("conversations.list", {});
    } catch (err) {
      return;
    }
    if (this.model) return; // started here meanwhile
    const convs = res.conversations || [];
    if (!convs.length) return this.renderBody();
    convs.sort((a, b) => ((a.updated_at || "") < (b.updated_at || "") ? 1 : -1));
    const open = convs.find((c) => c.status === "open") || convs[0];
    this.useConversation(open);
    await this.hub.sync(open.id, 0).catch(() => {});
  }

  useConversation(conv) {
    this.model = new ConversationModel(conv);
    this.hub.track(conv.id);
    this.rendered = new Map();
    this.renderBody();
  }

  // -- layout ----------------------------------------------------------------------------------------
  build() {
    const t = this.t;
    this.badge = h("span", { class: "launcher__badge", "aria-hidden": "true", hidden: true });
    this.launcher = h("button", { class: "launcher", type: "button", "aria-label": t("widget.open"), part: "launcher",
      "aria-controls": "rtc-panel", "aria-expanded": "false", on: { click: () => this.setOpen(!this.isOpen) } },
    h("span", { class: "launcher__icon" }, icon("chat", 28)), this.badge);
    // the connection state, said when it drops and when it is back
    this.statusEl = h("div", { class: "wstatus", hidden: true, role: "status", "aria-live": "polite" });
    this.activeBar = h("div", { class: "activebar", role: "group", "aria-label": t("widget.active_list"), hidden: true });
    this.body = h("div", { class: "wbody" });
    this.panel = h("section", { class: "panel", id: "rtc-panel", role: "dialog", "aria-labelledby": "rtc-panel-title", lang: t.lang,
      on: { keydown: (e) => {
        if (e.key === "Escape" && !e.defaultPrevented) {
          e.preventDefault();
          this.setOpen(false);
          this.launcher.focus();
        }
      } } },
    h("header", { class: "panel__header" },
      h("span", { class: "panel__logo", "aria-hidden": "true" }, icon("chat", 22)),
      h("div", { class: "panel__titles" },
        h("h2", { class: "panel__title", id: "rtc-panel-title", text: t("widget.title") }),
        h("div", { class: "panel__subtitle" }, h("span", { class: "online-dot", role: "img", "aria-label": t("widget.online") }),
          t("widget.subtitle"))),
      h("button", { class: "panel__close", type: "button", "aria-label": t("widget.close"), title: t("widget.close"),
        on: { click: () => {
          this.setOpen(false);
          this.launcher.focus();
        } } }, icon("close", 18))),
    this.statusEl, this.activeBar, this.body);
    const shell = h("div", { class: "rtc-widget", lang: t.lang }, this.panel, this.launcher);
    this.announce = announcer(shell);
    this.root.append(shell);
    this.renderBody();
  }

  get isOpen() {
    return !this.panel.hidden;
  }

  setOpen(open) {
    this.panel.hidden = !open;
    this.launcher.classList.toggle("is-open", open);
    replace(this.launcher, h("span", { class: "launcher__icon" }, icon(open ? "close" : "chat", open ? 24 : 28)), this.badge);
    this.launcher.setAttribute("aria-expanded", String(open));
    sessionStorage.setItem(this.openKey, open ? "1" : "0");
    if (open) {
      this.markRead();
      this.scrollDown();
      // the composer, or the pre-chat form's message (the one field it needs); the second try never
      // takes the focus from a field the visitor clicked meanwhile (their typing would land here)
      const input = this.root.querySelector(".wcomposer__input, .prechat textarea");
      if (input) {
        input.focus();
        setTimeout(() => {
          if (!this.panel.hidden && !this.panel.contains(this.root.activeElement)) input.focus();
        }, 30);
      }
    }
    this.renderBadge();
  }

  renderBody() {
    const hadFocus = !!(this.root.activeElement && this.body.contains(this.root.activeElement));
    if (!this.model) return replace(this.body, this.prechat());
    const t = this.t;
    // New messages and requests are announced by this.announce (the regions are drawn again as a whole).
    this.timeline = h("div", { class: "wtimeline", role: "log", "aria-live": "off", tabindex: "0", "aria-label": t("widget.messages") });
    this.prompts = h("div", { class: "prompts", role: "group", "aria-label": t("widget.prompts") });
    this.typingEl = h("div", { class: "wtyping", "aria-live": "polite" });
    this.fileInput = h("input", { type: "file", hidden: true, tabindex: "-1", on: { change: () => this.onFile() } });
    this.input = h("textarea", { class: "wcomposer__input", rows: "1", placeholder: t("widget.placeholder"),
      "aria-label": t("widget.placeholder"), on: { input: () => this.onInput(), keydown: (e) => this.onKey(e) } });
    this.uploads = h("div", { class: "uploads" });
    replace(this.body,
      this.timeline, this.typingEl, this.prompts, this.uploads,
      h("div", { class: "wcomposer" },
        h("button", { class: "wbtn wbtn--icon", type: "button", title: t("widget.attach"), "aria-label": t("widget.attach"),
          on: { click: () => this.fileInput.click() } }, icon("attach", 20)),
        this.input,
        h("button", { class: "wbtn wbtn--send", type: "button", title: t("widget.send"), "aria-label": t("widget.send"),
          on: { click: () => this.submit() } }, icon("send", 18)),
        this.fileInput));
    this.rendered = new Map();
    this.renderTimeline();
    this.renderRequests();
    if (hadFocus) this.input.focus(); // drawn anew: the keyboard focus stays in the chat
  }

  prechat() {
    const t = this.t;
    const name = h("input", { type: "text", name: "name", maxlength: "120", placeholder: t("widget.name"),
      "aria-label": t("widget.name"), value: this.prefill.name || "", autocomplete: "name" });
    const first = h("textarea", { name: "message", rows: "3", placeholder: t("widget.first"), "aria-label": t("widget.first"),
      required: true });
    const error = h("div", { class: "prechat__error", role: "alert" });
    const submit = h("button", { class: "wbtn wbtn--primary", type: "submit", text: t("widget.start") });
    const form = h("form", { class: "prechat", on: { submit: async (e) => {
      e.preventDefault();
      if (!first.value.trim()) return first.focus();
      submit.disabled = true;
      error.textContent = "";
      try {
        await this.startConversation(name.value.trim(), first.value.trim());
      } catch (err) {
        error.textContent = t("widget.error", { message: errorText(t, err) });
        submit.disabled = false;
      }
    } } },
      h("div", { class: "prechat__hello" },
        h("span", { class: "prechat__icon", "aria-hidden": "true" }, icon("chat", 20)),
        h("div", {}, h("strong", { text: t("widget.hello") }), h("p", { text: t("widget.hello_sub") }))),
      this.visitor && this.visitor.name ? null : name,
      first, error, submit);
    first.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    return form;
  }

  async startConversation(name, body) {
    if (!this.token) {
      const res = await fetch(this.server + "/api/visitors", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name, email: this.prefill.email || undefined, locale: this.t.lang }),
      });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error((data.error && data.error.message) || "HTTP " + res.status);
      this.token = data.token;
      this.visitor = data.visitor;
      localStorage.setItem(this.tokenKey, this.token);
    }
    this.connect();
    const payload = { page_url: location.href, body, client_id: clientId(), language: this.t.lang };
    if (this.team) payload.team_id = this.team;
    const res = await this.hub.call("conversation.start", payload, 15000);
    this.useConversation(res.conversation);
    if (this.input) this.input.focus(); // the form the focus was in is gone: on to the input field
    await this.hub.sync(res.conversation.id, 0);
  }

  // -- server events ---------------------------------------------------------------------------------
  onMessage(message) {
    if (!this.model || message.conversation_id !== this.model.id) {
      if (!this.model) this.loadConversation();
      return;
    }
    this.hub.seen(message.conversation_id, message.seq);
    const fresh = this.model.add(message);
    if (message.author.kind === "agent") this.onTyping({ conversation_id: message.conversation_id, author: message.author, typing: false });
    if (fresh && message.author.kind !== "customer") this.announceMessage(message);
    this.renderTimeline();
    this.afterNewMessages();
  }

  onSynced({ conversationId, conversation, messages, requests }) {
    if (!this.model || conversationId !== this.model.id) return;
    if (conversation) this.model.conversation = { ...this.model.conversation, ...conversation };
    for (const m of messages) this.model.add(m);
    for (const r of requests) this.model.setRequest(r);
    this.renderTimeline();
    this.renderRequests();
    this.afterNewMessages();
    for (const r of requests) {
      const handler = requestHandlers[r.kind];
      try {
        if (handler && handler.onSynced) handler.onSynced(this, r);
      } catch (err) {
        console.error(err);
      }
    }
  }

  /** Say a new message of the agent (or a system message) for screen readers. */
  announceMessage(message) {
    const t = this.t;
    let text;
    if (message.kind === "system") text = systemText(message, t);
    else {
      const body = (message.attachment && message.attachment.name) || (message.article && message.article.title)
        || (message.flow && message.flow.name) || message.body || "";
      text = t("announce.message", { name: message.author.name || t("widget.agent"), text: body.slice(0, 200) });
    }
    if (text) this.announce.polite(text);
  }

  onConversation(conversation) {
    if (this.model && conversation.id === this.model.id) this.model.conversation = { ...this.model.conversation, ...conversation };
  }

  onRequest(request) {
    if (!this.model || request.conversation_id !== this.model.id) return;
    const prev = this.model.requests.get(request.id);
    if (!this.model.setRequest(request)) return;
    if (request.state === "pending" && !this.isOpen) this.setOpen(true);
    this.renderRequests();
    if (request.state === "pending" && (!prev || prev.state !== "pending")) {
      const agent = (this.model.conversation.assignee && this.model.conversation.assignee.name) || this.t("widget.agent");
      this.announce.assertive(promptText(this.t, request, agent));
    }
    const handler = requestHandlers[request.kind];
    if (handler && handler.onUpdate) {
      try {
        handler.onUpdate(this, request, prev);
      } catch (err) {
        console.error(err);
      }
    }
  }

  onTyping({ conversation_id, author, typing }) {
    if (!this.model || conversation_id !== this.model.id || !author || author.kind !== "agent") return;
    clearTimeout(this.typingTimer);
    if (typing) {
      replace(this.typingEl, h("span", { class: "dots" }, h("i"), h("i"), h("i")),
        this.t("typing", { name: author.name || this.t("widget.agent") }));
      this.typingEl.classList.add("is-on");
      this.typingTimer = setTimeout(() => this.typingEl.classList.remove("is-on"), 8000);
    } else {
      this.typingEl.classList.remove("is-on");
    }
  }

  afterNewMessages() {
    const last = this.lastAgentSeq();
    if (last > this.deliveredSeq) {
      this.deliveredSeq = last;
      this.hub.call("message.delivered", { conversation_id: this.model.id, seq: last }).catch(() => {});
    }
    this.markRead();
    this.renderBadge();
  }

  lastAgentSeq() {
    let last = 0;
    for (const m of this.model.messages.values()) if (m.author.kind !== "customer" && m.seq > last) last = m.seq;
    return last;
  }

  sendRead() {
    if (!this.model || !this.isOpen || document.hidden) return;
    const last = this.model.lastSeq;
    if (last <= this.readSeq) return;
    this.readSeq = last;
    this.renderBadge();
    this.hub.call("message.read", { conversation_id: this.model.id, seq: last }).catch(() => {});
  }

  renderBadge() {
    let unread = 0;
    if (this.model && !this.isOpen) {
      for (const m of this.model.messages.values()) if (m.author.kind === "agent" && m.seq > this.readSeq) unread++;
    }
    this.badge.textContent = String(unread);
    this.badge.hidden = !unread;
    const t = this.t;
    this.launcher.setAttribute("aria-label", this.isOpen ? t("widget.close") : unread ? t.plural("widget.open_unread", unread) : t("widget.open"));
  }

  showStatus({ online, reconnect, retrying }) {
    clearTimeout(this.statusTimer);
    if (!online) {
      // before the first connection only a retry the server asked for (rate limited) is worth saying
      if (!this.hub || (!this.hub.everConnected && !retrying)) return;
      this.statusEl.textContent = this.t("reconnecting");
      this.statusEl.className = "wstatus wstatus--offline";
      this.statusEl.hidden = false;
    } else if (reconnect) {
      this.statusEl.textContent = this.t("online_again");
      this.statusEl.className = "wstatus wstatus--online";
      this.statusEl.hidden = false;
      this.statusTimer = setTimeout(() => (this.statusEl.hidden = true), 2500);
    } else {
      this.statusEl.hidden = true;
    }
  }

  // -- timeline --------------------------------------------------------------------------------------
  renderTimeline() {
    if (!this.model || !this.timeline) return;
    const t = this.t;
    const messages = this.model.ordered();
    const ctx = {
      viewer: "customer",
      t,
      asset: (url) => this.asset(url),
      isMine: (m) => m.author && m.author.kind === "customer",
      authorName: (m) => (m.author.kind === "customer" ? "" : m.author.name || t("widget.agent")),
      renderFlow: (m) => this.flowCard(m).el,
    };
    const near = this.timeline.scrollHeight - this.timeline.scrollTop - this.timeline.clientHeight < 80;
    const keep = new Map();
    let prev = null;
    for (const m of messages) {
      const key = (m.pending ? "p:" + m.client_id : "s:" + m.seq) + (m.failed ? ":f" : "");
      let el = this.rendered.get(key);
      if (!el) el = renderMessage(m, ctx);
      keep.set(key, el);
      const expected = prev ? prev.nextSibling : this.timeline.firstChild;
      if (expected !== el) this.timeline.insertBefore(el, expected);
      prev = el;
    }
    for (const [key, el] of this.rendered) if (!keep.has(key)) el.remove();
    this.rendered = keep;
    for (const card of this.flowCards.values()) card.update();
    if (near || !this.scrolled) {
      this.scrollDown();
      this.scrolled = messages.length > 0;
    }
  }

  scrollDown() {
    if (this.timeline) this.timeline.scrollTop = this.timeline.scrollHeight;
  }

  asset(url) {
    if (!url) return "";
    const abs = /^https?:/.test(url) ? url : this.server + url;
    return abs + (abs.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(this.token || "");
  }

  flowCard(message) {
    let card = this.flowCards.get(message.seq);
    if (!card) {
      card = new FlowCard(this, message);
      this.flowCards.set(message.seq, card);
    }
    return card;
  }

  // -- requests --------------------------------------------------------------------------------------
  renderRequests() {
    if (!this.model || !this.prompts) return;
    const t = this.t;
    const reqs = [...this.model.requests.values()];
    const agent = (this.model.conversation.assignee && this.model.conversation.assignee.name) || t("widget.agent");
    const pending = reqs.filter((r) => r.state === "pending");
    const focusedPrompt = this.root.activeElement && this.prompts.contains(this.root.activeElement)
      ? this.root.activeElement.closest(".prompt").dataset.id + ":" + this.root.activeElement.dataset.action : "";
    replace(this.prompts, pending.map((r) => h("div", { class: "prompt", role: "group", "aria-labelledby": "prompt-title-" + r.id,
      "aria-describedby": "prompt-text-" + r.id, data: { id: r.id, kind: r.kind } },
      h("div", { class: "prompt__icon", "aria-hidden": "true" }, icon(KIND_ICONS[r.kind] || "cobrowse", 22)),
      h("div", { class: "prompt__main" },
        h("h3", { class: "prompt__title", id: "prompt-title-" + r.id, text: t("kind." + r.kind) }),
        // the recording notice is part of the text the prompt is described by, said once, in red
        h("div", { class: "prompt__text", id: "prompt-text-" + r.id }, t("widget.prompt." + r.kind, { agent }),
          r.record ? h("div", { class: "prompt__rec", text: "REC · " + t("widget.prompt.recorded") }) : null),
        h("div", { class: "prompt__actions" },
          h("button", { class: "wbtn wbtn--ghost", type: "button", data: { action: "decline" },
            on: { click: (e) => this.respond(r, false, e.currentTarget) } }, t("widget.decline")),
          h("button", { class: "wbtn wbtn--primary", type: "button", data: { action: "accept" },
            on: { click: (e) => this.respond(r, true, e.currentTarget) } }, t("widget.accept")))))));
    const active = reqs.filter((r) => r.state === "accepted" || r.state === "active");
    replace(this.activeBar, active.map((r) => h("div", { class: "activebar__item", data: { id: r.id, kind: r.kind, state: r.state } },
      h("span", { class: "green-dot", "aria-hidden": "true" }),
      h("span", { class: "activebar__text", text: t("widget.active", { kind: t("kind." + r.kind) }) }),
      h("button", { class: "wbtn wbtn--stop", type: "button", "aria-label": t("widget.stop_label", { kind: t("kind." + r.kind) }),
        on: { click: () => this.endRequest(r) } }, icon("stop", 14), t("widget.stop")))));
    this.activeBar.hidden = active.length === 0;
    if (focusedPrompt) {
      const [id, action] = focusedPrompt.split(":");
      const again = this.prompts.querySelector(`.prompt[data-id="${CSS.escape(id)}"] button[data-action="${action}"]`);
      if (again) again.focus();
      else if (this.input) this.input.focus();
    }
  }

  async respond(request, accept, button) {
    for (const b of button.parentNode.querySelectorAll("button")) b.disabled = true;
    try {
      const res = await this.hub.call("request.respond", { request_id: request.id, accept });
      const handler = requestHandlers[request.kind];
      if (accept && handler && handler.onAccepted) {
        try {
          handler.onAccepted(this, res.request); // this tab accepted: it is the one that shares
        } catch (err) {
          console.error(err);
        }
      }
      this.onRequest(res.request);
    } catch (err) {
      this.notice(t(this, "widget.error", { message: errorText(this.t, err) }));
      for (const b of button.parentNode.querySelectorAll("button")) b.disabled = false;
    }
  }

  async endRequest(request) {
    try {
      const res = await this.hub.call("request.end", { request_id: request.id, reason: "customer_stopped" });
      this.onRequest(res.request);
    } catch (err) {
      this.notice(t(this, "widget.error", { message: errorText(this.t, err) }));
    }
  }

  notice(text) {
    const el = h("div", { class: "wnotice", role: "alert", text });
    this.body.prepend(el);
    setTimeout(() => el.remove(), 5000);
  }

  // -- composer --------------------------------------------------------------------------------------
  onInput() {
    this.input.style.height = "auto";
    this.input.style.height = Math.min(120, this.input.scrollHeight) + "px";
    if (this.input.value.trim()) {
      if (!this.typingSent) this.sendTyping(true);
      this.stopTyping();
    } else if (this.typingSent) this.sendTyping(false);
  }

  sendTyping(on) {
    this.typingSent = on;
    if (!on) this.stopTyping.cancel();
    if (this.model && this.hub) this.hub.call("typing", { conversation_id: this.model.id, typing: on }).catch(() => {});
  }

  onKey(e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.submit();
    }
  }

  submit() {
    const body = this.input.value.trim();
    if (!body || !this.model) return;
    this.input.value = "";
    this.onInput();
    this.send({ kind: "text", body });
  }

  /** message.send through the outbox, shown as pending until stored. */
  send(fields) {
    const payload = { conversation_id: this.model.id, client_id: clientId(), ...fields };
    const model = this.model;
    model.addPending({ ...payload, author: { kind: "customer", id: "", name: "" }, created_at: new Date().toISOString() });
    this.renderTimeline();
    this.scrollDown();
    return this.hub.send("message.send", payload).then(
      (res) => {
        model.add(res.message);
        this.renderTimeline();
        return res.message;
      },
      (err) => {
        model.failPending(payload.client_id);
        this.renderTimeline();
        this.notice(this.t("widget.error", { message: errorText(this.t, err) }));
      });
  }

  /** Upload with a progress bar and Cancel above the input field, then send the attachment. */
  async onFile() {
    const file = this.fileInput.files && this.fileInput.files[0];
    this.fileInput.value = "";
    if (!file || !this.model) return;
    const t = this.t;
    let job = null;
    const view = uploadView(t, file, () => job && job.abort());
    this.uploads.append(view.el);
    job = startUpload(this.server, this.token, this.model.id, file, { onProgress: (sent, total) => view.update(sent, total) });
    this.announce.polite(t("upload.progress", { name: file.name }));
    try {
      const att = await job.promise;
      view.update(1, 1);
      await this.send({ kind: kindFor(att), attachment_id: att.id });
    } catch (err) {
      if (err.code === "aborted") this.announce.polite(t("upload.cancelled", { name: file.name }));
      else this.notice(uploadError(t, err));
      if (this.input) this.input.focus();
    } finally {
      view.el.remove();
    }
  }
}

const KIND_ICONS = {
  cobrowse: "cobrowse", call: "phone", video: "camera", desktop: "desktop", show_screen: "screen", conference: "conference",
};

function t(widget, key, params) {
  return widget.t(key, params);
}

export { isLive };

/** The consent prompt's text for `request`: what the agent asks, and that it is recorded when it is. */
function promptText(t, request, agent) {
  const text = t("widget.prompt." + request.kind, { agent });
  return request.record ? text + " " + t("widget.prompt.recorded") : text;
}
