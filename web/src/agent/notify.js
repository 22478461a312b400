// New-conversation alerts when the Live Chat view is not in front: an in-page toast (always), the
// browser's Notification API (when permitted) and the ringtone, looping until the conversation is
// opened or someone else takes it.
import { h, icon } from "../shared/dom.js";
import { initials } from "../shared/render.js";
import { conversationPreview } from "./list.js";

export class Notifier {
  constructor(app) {
    this.app = app;
    this.audio = document.getElementById("ringtone");
    this.ringing = new Map(); // conversation id -> {toast, notification}
  }

  /** Alert about `conv`; `sound` false when the agent is already looking at the Live Chat list. */
  incoming(conv, { redirected = false, note = "", sound = true } = {}) {
    this.stop(conv.id, { keepSound: true });
    const entry = { toast: this.toast(conv, redirected, note), notification: null, sound };
    if (sound) entry.notification = this.systemNotification(conv, redirected);
    this.ringing.set(conv.id, entry);
    if (sound) this.ring();
  }

  /** The ringtone's notification as text: an alert that screen readers read at once, with an Open
   * button (the whole card) and Dismiss. */
  toast(conv, redirected, note) {
    const app = this.app;
    const t = app.t;
    const name = app.visitorName(conv);
    const title = redirected ? t("notify.redirected") : t("notify.new");
    const preview = note || conversationPreview(app, conv) || conv.page_url || t("notify.waiting");
    const close = h("button", { type: "button", class: "iconbtn iconbtn--small toast__dismiss", "aria-label": t("notify.dismiss"),
      title: t("notify.dismiss"), on: { click: (e) => { e.stopPropagation(); this.stop(conv.id); } } }, icon("close", 14));
    const open = h("button", { type: "button", class: "toast__open", "aria-label": t("notify.open", { name }) + ". " + title + ": " + preview,
      on: { click: () => app.openConversation(conv.id) } },
    h("span", { class: "toast__ring", "aria-hidden": "true" }, icon("bell", 18)),
    h("span", { class: "avatar avatar--sm", "aria-hidden": "true", text: initials(name) }),
    h("span", { class: "toast__text" },
      h("strong", { class: "toast__title", text: title }),
      h("span", { class: "toast__name", text: name }),
      h("span", { class: "toast__preview", text: preview })));
    const el = h("div", { class: "toast toast--incoming", role: "alert", data: { conversation: conv.id } }, open, close);
    app.toasts.prepend(el);
    return el;
  }

  systemNotification(conv, redirected) {
    if (!("Notification" in window) || Notification.permission !== "granted") return null;
    try {
      const t = this.app.t;
      const n = new Notification(redirected ? t("notify.redirected") : t("notify.new"), {
        lang: t.lang,
        body: this.app.visitorName(conv) + (conv.last_message_preview ? ": " + conversationPreview(this.app, conv) : ""),
        tag: "conversation-" + conv.id,
        icon: "/favicon.svg",
        requireInteraction: true,
      });
      n.onclick = () => {
        window.focus();
        this.app.openConversation(conv.id);
        n.close();
      };
      return n;
    } catch (err) {
      return null; // e.g. a browser that only allows notifications from a service worker
    }
  }

  ring() {
    if (!this.audio) return;
    this.audio.loop = true;
    if (!this.audio.paused) return;
    this.audio.currentTime = 0;
    const p = this.audio.play();
    if (p && p.catch) p.catch((err) => console.warn("ringtone blocked:", err.message));
  }

  /** Stop alerting about one conversation; the ringtone stops when nothing rings any more. */
  stop(conversationId, { keepSound = false } = {}) {
    const entry = this.ringing.get(conversationId);
    if (entry) {
      entry.toast.remove();
      if (entry.notification) entry.notification.close();
      this.ringing.delete(conversationId);
    }
    if (!keepSound && ![...this.ringing.values()].some((e) => e.sound)) this.silence();
  }

  silence() {
    if (this.audio && !this.audio.paused) this.audio.pause();
  }

  stopAll() {
    for (const id of [...this.ringing.keys()]) this.stop(id);
    this.silence();
  }
}
