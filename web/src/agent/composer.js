// The input field: text with typing indicator, `#` text-block search (a listbox the arrows move in,
// announced through aria-activedescendant), the attachment bar (a toolbar: arrows move between its
// buttons; collapsible with a chevron), uploads with a progress bar and Cancel, and the Notes switch.
import { errorText } from "../shared/i18n.js";
import { h, icon, replace, clientId, debounce } from "../shared/dom.js";
import { startUpload, uploadView, uploadError, kindFor } from "../shared/upload.js";
import { articlesDialog, flowsDialog, chatblocksDialog } from "./pickers.js";
import { toast } from "./ui.js";

const TYPING_IDLE_MS = 2500;
const BAR_KEY = "rtc-engage.agent.attachbar";

/** Fill `{{ name }}` placeholders like the server does (unknown names stay as written). */
export function fillTemplate(body, vars) {
  const folded = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k.toLowerCase(), v]));
  return body.replace(/\{\{\s*([A-Za-z0-9_][A-Za-z0-9_.-]*)\s*\}\}/g, (m, name) => {
    if (name in vars) return String(vars[name]);
    const v = folded[name.toLowerCase()];
    return v === undefined ? m : String(v);
  });
}

export class Composer {
  constructor(app, pane) {
    this.app = app;
    this.pane = pane;
    this.notes = false;
    this.typingSent = false;
    this.popup = null;
    this.stopTyping = debounce(() => this.sendTyping(false), TYPING_IDLE_MS);
    this.searchBlocks = debounce((q) => this.loadBlocks(q), 120);

    const t = app.t;
    this.t = t;
    this.input = h("textarea", { class: "composer__input", id: "composer-input", rows: "2",
      placeholder: t("composer.placeholder"), "aria-label": t("composer.label"), "aria-describedby": "composer-hint",
      "aria-autocomplete": "list", "aria-controls": "textblock-popup",
      on: { input: () => this.onInput(), keydown: (e) => this.onKey(e), blur: () => setTimeout(() => document.activeElement !== this.input && this.closePopup(), 150) } });
    this.input.value = app.drafts?.get(pane.id) || "";
    const send = h("button", { class: "iconbtn iconbtn--primary", type: "button", id: "send", title: t("composer.send"),
      "aria-label": t("composer.send"), on: { click: () => this.submit() } }, icon("send", 19));
    const collapsed = localStorage.getItem(BAR_KEY) === "collapsed";
    this.chevron = h("button", { class: "iconbtn chevron", type: "button", id: "attachbar-toggle",
      title: t("composer.toggle_bar"), "aria-label": t("composer.toggle_bar"), "aria-expanded": String(!collapsed),
      "aria-controls": "attachbar", on: { click: () => this.toggleBar() } }, icon(collapsed ? "chevronUp" : "chevronDown", 18));
    this.fileInput = h("input", { type: "file", hidden: true, id: "agent-file", tabindex: "-1", "aria-hidden": "true",
      on: { change: () => this.onFile() } });
    this.bar = h("div", { class: "attachbar", id: "attachbar", hidden: collapsed, role: "toolbar", "aria-label": t("composer.bar"),
      on: { keydown: (e) => this.onBarKey(e) } },
    this.barButton("article", t("bar.article"), () => this.pickArticle()),
    this.barButton("image", t("bar.image"), () => this.chooseFile("image", "image/*")),
    this.barButton("video", t("bar.video"), () => this.chooseFile("video", "video/*")),
    this.barButton("flow", t("bar.flow"), () => this.pickFlow()),
    this.barButton("audio", t("bar.audio"), () => this.chooseFile("audio", "audio/*")),
    this.barButton("file", t("bar.file"), () => this.chooseFile("file", "")),
    this.barButton("cobrowse", t("bar.cobrowse"), () => this.pane.createRequest("cobrowse"), "cobrowse"),
    this.barButton("chatblock", t("bar.chatblock"), () => this.pickChatblock()),
    this.fileInput);
    this.notesSwitch = h("input", { type: "checkbox", id: "notes-switch", role: "switch", "aria-checked": "false",
      on: { change: () => this.setNotes(this.notesSwitch.checked) } });
    this.box = h("div", { class: "composer__box" }, this.input, h("div", { class: "composer__side" }, send, this.chevron));
    this.popupEl = h("div", { class: "tbpopup", id: "textblock-popup", role: "listbox", "aria-label": t("composer.blocks"), hidden: true });
    this.uploads = h("div", { class: "uploads", role: "group", "aria-label": t("composer.bar") });
    this.el = h("div", { class: "composer" },
      this.popupEl,
      this.uploads,
      this.box,
      this.bar,
      h("div", { class: "composer__footer" },
        h("label", { class: "switch", for: "notes-switch" }, this.notesSwitch, h("span", { class: "switch__track", "aria-hidden": "true" }),
          h("span", { class: "switch__label", text: t("composer.notes") })),
        h("span", { class: "composer__hint", id: "composer-hint", text: t("composer.hint") })));
  }

  barButton(iconName, label, onClick, id) {
    return h("button", { class: "attachbar__btn", type: "button", title: label,
      data: { action: id || iconName }, on: { click: onClick } }, icon(iconName, 20), h("span", { class: "attachbar__label", text: label }));
  }

  /** Left/Right (and Home/End) move between the toolbar's buttons. */
  onBarKey(e) {
    const buttons = [...this.bar.querySelectorAll(".attachbar__btn")];
    const i = buttons.indexOf(document.activeElement);
    if (i < 0) return;
    const to = e.key === "ArrowRight" ? i + 1 : e.key === "ArrowLeft" ? i - 1 : e.key === "Home" ? 0 : e.key === "End" ? buttons.length - 1 : null;
    if (to === null) return;
    e.preventDefault();
    buttons[(to + buttons.length) % buttons.length].focus();
  }

  focus() {
    this.input.focus();
  }

  destroy() {
    if (!this.app.drafts) this.app.drafts = new Map();
    this.app.drafts.set(this.pane.id, this.input.value);
    if (this.typingSent) this.sendTyping(false);
    this.stopTyping.cancel();
  }

  toggleBar() {
    const hidden = !this.bar.hidden;
    this.bar.hidden = hidden;
    localStorage.setItem(BAR_KEY, hidden ? "collapsed" : "open");
    this.chevron.setAttribute("aria-expanded", String(!hidden));
    replace(this.chevron, icon(hidden ? "chevronUp" : "chevronDown", 18));
  }

  setNotes(on) {
    this.notes = on;
    this.notesSwitch.checked = on;
    this.box.classList.toggle("is-note", on);
    this.notesSwitch.setAttribute("aria-checked", String(on));
    this.input.placeholder = on ? this.t("composer.note_placeholder") : this.t("composer.placeholder");
    if (on && this.typingSent) this.sendTyping(false);
  }

  // -- typing ----------------------------------------------------------------------------------------
  onInput() {
    if (!this.notes && this.input.value.trim()) {
      if (!this.typingSent) this.sendTyping(true);
      this.stopTyping();
    } else if (this.typingSent && !this.input.value.trim()) {
      this.sendTyping(false);
    }
    this.checkHash();
  }

  sendTyping(on) {
    this.typingSent = on;
    if (!on) this.stopTyping.cancel();
    this.app.hub.call("typing", { conversation_id: this.pane.id, typing: on }).catch(() => {});
  }

  // -- text blocks (#) -------------------------------------------------------------------------------
  hashQuery() {
    const caret = this.input.selectionStart;
    const before = this.input.value.slice(0, caret);
    const m = /(^|\s)#([^\s#]*)$/.exec(before);
    if (!m) return null;
    return { query: m[2], start: caret - m[2].length - 1, end: caret };
  }

  checkHash() {
    const hq = this.hashQuery();
    if (!hq) return this.closePopup();
    this.popup = { ...hq, items: this.popup ? this.popup.items : [], index: 0 };
    this.searchBlocks(hq.query);
  }

  async loadBlocks(q) {
    let res;
    try {
      res = await this.app.hub.call("textblocks.search", { q, conversation_id: this.pane.id });
    } catch (err) {
      return;
    }
    if (!this.popup || this.popup.query !== q) return;
    this.popup.items = res.textblocks;
    this.popup.index = 0;
    this.renderPopup();
  }

  renderPopup() {
    const p = this.popup;
    if (!p) return;
    const lang = this.pane.conv.language || this.t.lang;
    if (!p.items.length) {
      replace(this.popupEl, h("div", { class: "tbpopup__empty", role: "option", "aria-disabled": "true",
        "aria-selected": "false", text: this.t("composer.no_block", { q: p.query }) }));
      this.input.removeAttribute("aria-activedescendant");
    } else {
      replace(this.popupEl, p.items.map((b, i) => h("div", {
        class: ["tbpopup__item", i === p.index && "is-active"], role: "option", "aria-selected": String(i === p.index),
        id: "textblock-option-" + i, lang: b.language || null,
        data: { id: b.id },
        on: { mousedown: (e) => { e.preventDefault(); p.index = i; this.insertBlock(); } },
      },
        h("div", { class: "tbpopup__top" }, h("span", { class: "tbpopup__shortcut", text: "#" + b.shortcut }),
          h("span", { class: "tbpopup__title", text: b.title }),
          b.language && b.language !== lang ? h("span", { class: "tag tag--lang", text: b.language }) : null),
        h("div", { class: "tbpopup__body", text: this.fill(b.body) }))));
      this.input.setAttribute("aria-activedescendant", "textblock-option-" + p.index);
      const active = this.popupEl.querySelector(".is-active");
      if (active && active.scrollIntoView) active.scrollIntoView({ block: "nearest" });
    }
    this.popupEl.hidden = false;
  }

  closePopup() {
    this.popup = null;
    this.popupEl.hidden = true;
    this.input.removeAttribute("aria-activedescendant");
  }

  vars() {
    const conv = this.pane.conv;
    const v = conv.visitor || {};
    return {
      "customer.name": v.name || "",
      "customer.email": v.email || "",
      "agent.name": this.app.me.name || "",
      "agent.email": this.app.me.email || "",
      "conversation.id": conv.id,
    };
  }

  fill(body) {
    return fillTemplate(body, this.vars());
  }

  insertBlock() {
    const p = this.popup;
    if (!p || !p.items.length) return;
    const block = p.items[p.index];
    const text = this.fill(block.body);
    const value = this.input.value;
    this.input.value = value.slice(0, p.start) + text + value.slice(p.end);
    const caret = p.start + text.length;
    this.input.setSelectionRange(caret, caret);
    this.closePopup();
    this.input.focus();
    this.onInput();
  }

  onKey(e) {
    if (this.popup && !this.popupEl.hidden) {
      const n = this.popup.items.length;
      if (e.key === "ArrowDown" && n) {
        e.preventDefault();
        this.popup.index = (this.popup.index + 1) % n;
        return this.renderPopup();
      }
      if (e.key === "ArrowUp" && n) {
        e.preventDefault();
        this.popup.index = (this.popup.index - 1 + n) % n;
        return this.renderPopup();
      }
      if ((e.key === "Enter" || e.key === "Tab") && n) {
        e.preventDefault();
        return this.insertBlock();
      }
      if (e.key === "Escape") {
        e.preventDefault();
        return this.closePopup();
      }
    }
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.submit();
    }
  }

  // -- sending ---------------------------------------------------------------------------------------
  submit() {
    const body = this.input.value.trim();
    if (!body) return;
    this.input.value = "";
    this.closePopup();
    if (this.notes) return this.sendNote(body);
    if (this.typingSent) this.sendTyping(false);
    this.send({ kind: "text", body });
  }

  /** message.send through the outbox, with a pending copy in the timeline until it is stored. */
  send(fields) {
    const payload = { conversation_id: this.pane.id, client_id: clientId(), ...fields };
    const model = this.pane.model;
    model.addPending({ ...payload, author: { kind: "agent", id: this.app.me.id, name: this.app.me.name },
      created_at: new Date().toISOString() });
    this.pane.renderTimeline();
    return this.app.hub.send("message.send", payload).then(
      (res) => {
        model.add(res.message);
        this.pane.renderTimeline();
        return res.message;
      },
      (err) => {
        model.failPending(payload.client_id);
        this.pane.renderTimeline();
        toast(this.app, this.t("composer.not_sent", { message: errorText(this.t, err) }), "error");
      });
  }

  sendNote(body) {
    const payload = { conversation_id: this.pane.id, client_id: clientId("note"), body };
    const model = this.pane.model;
    model.addPending({ ...payload, kind: "note", author: { kind: "agent", id: this.app.me.id, name: this.app.me.name },
      created_at: new Date().toISOString() });
    this.pane.renderTimeline();
    this.app.hub.send("note.add", payload).then(
      (res) => {
        model.add(res.message);
        this.pane.renderTimeline();
      },
      (err) => {
        model.failPending(payload.client_id);
        this.pane.renderTimeline();
        toast(this.app, this.t("composer.note_failed", { message: errorText(this.t, err) }), "error");
      });
  }

  // -- attachments -----------------------------------------------------------------------------------
  chooseFile(kind, accept) {
    this.wantedKind = kind;
    this.fileInput.accept = accept;
    this.fileInput.value = "";
    this.fileInput.click();
  }

  async onFile() {
    const file = this.fileInput.files && this.fileInput.files[0];
    if (!file) return;
    await this.uploadAndSend(file, this.wantedKind);
  }

  /** Upload with a progress bar and Cancel above the input field, then send the attachment. */
  async uploadAndSend(file, wanted) {
    const t = this.t;
    let job = null;
    const view = uploadView(t, file, () => job && job.abort());
    this.uploads.append(view.el);
    job = startUpload("", this.app.token, this.pane.id, file, { onProgress: (sent, total) => view.update(sent, total) });
    this.app.announce.polite(t("upload.progress", { name: file.name }));
    try {
      const att = await job.promise;
      view.update(1, 1);
      await this.send({ kind: kindFor(att, wanted), attachment_id: att.id });
    } catch (err) {
      if (err.code === "aborted") {
        toast(this.app, t("upload.cancelled", { name: file.name }));
        this.focus();
      } else {
        toast(this.app, uploadError(t, err), "error");
      }
    } finally {
      view.el.remove();
    }
  }

  async pickArticle() {
    const article = await articlesDialog(this.app, this.pane.conv);
    if (article) this.send({ kind: "article", article_id: article.id });
  }

  async pickFlow() {
    const flow = await flowsDialog(this.app, this.pane.conv);
    if (flow) this.send({ kind: "flow", flow_id: flow.id });
  }

  async pickChatblock() {
    const block = await chatblocksDialog(this.app, this.pane.conv, (b) => this.fill(b));
    if (block) this.send({ kind: "chatblock", textblock_id: block.id });
  }
}
